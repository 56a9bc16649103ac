"""/admin/v1: quota status per account, suspensions, and what abuse detection has seen."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin import requests
from noor_daemon.admin.errors import bad_request
from noor_daemon.domain.serialize import account_json, key_json
from noor_daemon.limits.enforcer import LIMIT_NAMES
from noor_daemon.limits.report import quota_report
from noor_daemon.state import ACCOUNTS, AUDIT, KEYRING, LIMITER, PROXY, SETTINGS

routes = web.RouteTableDef()


def _now_ms(request: web.Request) -> int:
    return int(request.config_dict[SETTINGS].clock.now() * 1000)


def parse_limits(body: dict) -> dict[str, float] | None:
    """`limits`: limit name → a positive whole number, or for a budget (`budget_per_day`, `budget_per_month`) a
    positive amount in the configured currency."""
    limits = body.get("limits")
    if limits is None:
        return None
    if not isinstance(limits, dict):
        raise bad_request("`limits` must be an object of limit name to a positive whole number.")
    for name, value in limits.items():
        if name not in LIMIT_NAMES:
            raise bad_request(f"Unknown limit {name!r}; known: {', '.join(LIMIT_NAMES)}.")
        if name.startswith("budget_"):
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 10**9:
                raise bad_request(f"Budget {name!r} must be a positive amount (e.g. 20 or 2.5).")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad_request(f"Limit {name!r} must be a positive whole number.")
    return limits


@routes.get("/accounts/{ref}/quota")
async def account_quota(request: web.Request) -> web.Response:
    store = request.config_dict[ACCOUNTS]
    account = await store.get_account(request.match_info["ref"])
    live = request.config_dict[KEYRING].accounts.get(account.id, account)
    return web.json_response(await quota_report(request.config_dict[LIMITER], store, live, _now_ms(request)))


async def _set_account_status(request: web.Request, status: str) -> web.Response:
    store = request.config_dict[ACCOUNTS]
    account = await store.get_account(request.match_info["ref"])
    account = await store.update_account(account.id, status=status)
    return web.json_response(account_json(account))


@routes.post("/accounts/{ref}/suspend")
async def suspend_account(request: web.Request) -> web.Response:
    return await _set_account_status(request, "suspended")


@routes.post("/accounts/{ref}/unsuspend")
async def unsuspend_account(request: web.Request) -> web.Response:
    return await _set_account_status(request, "active")


async def _set_key_status(request: web.Request, status: str) -> web.Response:
    body = await requests.json_body(request)
    reason = requests.optional_str(body, "reason", max_length=500)
    key = await request.config_dict[ACCOUNTS].set_key_status(request.match_info["key_id"], status, reason=reason)
    return web.json_response(key_json(key, _now_ms(request)))


@routes.post("/keys/{key_id}/suspend")
async def suspend_key(request: web.Request) -> web.Response:
    return await _set_key_status(request, "suspended")


@routes.post("/keys/{key_id}/unsuspend")
async def unsuspend_key(request: web.Request) -> web.Response:
    return await _set_key_status(request, "active")


@routes.patch("/keys/{key_id}")
async def update_key(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    limits = parse_limits(body)
    if limits is None:
        raise bad_request("Nothing to change: send `limits`.")
    key = await request.config_dict[ACCOUNTS].set_key_limits(request.match_info["key_id"], limits)
    return web.json_response(key_json(key, _now_ms(request)))


@routes.get("/abuse")
async def abuse(request: web.Request) -> web.Response:
    proxy = request.config_dict[PROXY]
    flags = await request.config_dict[AUDIT].entries(action="abuse.*", limit=200)
    blocked = [
        {"address": address, "seconds_left": round(left, 1)} for address, left in proxy.auth_failures.blocked().items()
    ]
    return web.json_response({"blocked_addresses": blocked, "flags": flags})
