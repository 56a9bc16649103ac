"""/admin/v1/accounts: create, list, get, change email/plan/status, delete."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin import requests
from noor_daemon.admin.errors import bad_request
from noor_daemon.admin.limits import parse_limits
from noor_daemon.domain.serialize import account_json
from noor_daemon.state import ACCOUNTS, PRIVACY, SETTINGS

routes = web.RouteTableDef()

STATUSES = ("active", "suspended")


def _plan(request: web.Request, name: object) -> str:
    config = request.config_dict[SETTINGS].config.config
    if not isinstance(name, str) or config.plan(name) is None:
        raise bad_request(f"`plan` must be one of: {', '.join(config.plan_names)}.")
    return name


@routes.get("/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    accounts = await request.config_dict[ACCOUNTS].list_accounts()
    return web.json_response({"data": [account_json(a) for a in accounts]})


@routes.post("/accounts")
async def create_account(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    email = requests.email(body.get("email"))
    default = request.config_dict[SETTINGS].config.config.default_plan
    plan = _plan(request, body.get("plan") or default)
    account = await request.config_dict[ACCOUNTS].create_account(email, plan)
    return web.json_response(account_json(account), status=201)


@routes.get("/accounts/{ref}")
async def get_account(request: web.Request) -> web.Response:
    account = await request.config_dict[ACCOUNTS].get_account(request.match_info["ref"])
    return web.json_response(account_json(account))


@routes.patch("/accounts/{ref}")
async def update_account(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    store = request.config_dict[ACCOUNTS]
    account = await store.get_account(request.match_info["ref"])
    email = requests.email(body["email"]) if "email" in body else None
    plan = _plan(request, body["plan"]) if "plan" in body else None
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise bad_request(f"`status` must be one of: {', '.join(STATUSES)}.")
    limits = parse_limits(body) if "limits" in body else None
    if "limits" in body and body["limits"] is None:
        limits = {}
    account = await store.update_account(account.id, email=email, plan=plan, status=status, limits=limits)
    return web.json_response(account_json(account))


@routes.delete("/accounts/{ref}")
async def delete_account(request: web.Request) -> web.Response:
    """Erase the account: keys refused at once, usage and rollups gone, audit pseudonymous, request recorded."""
    erasure = await request.config_dict[PRIVACY].delete_account(request.match_info["ref"], actor="admin")
    return web.json_response(erasure.json())
