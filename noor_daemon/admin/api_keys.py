"""/admin/v1/keys: create (the full key is in the answer once), list masked, revoke, rotate (at once or after a grace period)."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin import requests
from noor_daemon.admin.errors import bad_request
from noor_daemon.admin.limits import parse_limits
from noor_daemon.clock import iso
from noor_daemon.domain.serialize import key_json
from noor_daemon.ledger.accounts import IssuedKey
from noor_daemon.state import ACCOUNTS, SETTINGS

routes = web.RouteTableDef()


def _now_ms(request: web.Request) -> int:
    return int(request.config_dict[SETTINGS].clock.now() * 1000)


def _issued_json(request: web.Request, issued: IssuedKey) -> dict:
    return {
        **key_json(issued.key, _now_ms(request)),
        "key": issued.secret,
        "previous_expires_at": iso(issued.previous_expires_at),
    }


@routes.get("/keys")
async def list_keys(request: web.Request) -> web.Response:
    store = request.config_dict[ACCOUNTS]
    account_ref = request.query.get("account")
    account_id = (await store.get_account(account_ref)).id if account_ref else None
    now = _now_ms(request)
    return web.json_response({"data": [key_json(k, now) for k in await store.list_keys(account_id)]})


@routes.post("/keys")
async def create_key(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    account_ref = body.get("account")
    if not isinstance(account_ref, str) or not account_ref:
        raise bad_request("`account` (an account id or email) is required.")
    expires_in = body.get("expires_in")
    if expires_in is not None and (not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0):
        raise bad_request("`expires_in` must be a positive number of seconds.")
    models = requests.string_list(body, "models")
    known = request.config_dict[SETTINGS].config.config
    unknown = [m for m in models or () if m not in {mc.name for mc in known.models}]
    if unknown:
        raise bad_request(f"Unknown model(s): {', '.join(unknown)}.")
    store = request.config_dict[ACCOUNTS]
    account = await store.get_account(account_ref)
    issued = await store.create_key(
        account.id,
        name=requests.optional_str(body, "name"),
        allowed_models=models,
        expires_at=_now_ms(request) + expires_in * 1000 if expires_in else None,
        limits=parse_limits(body),
    )
    return web.json_response(_issued_json(request, issued), status=201)


@routes.get("/keys/{key_id}")
async def get_key(request: web.Request) -> web.Response:
    key = await request.config_dict[ACCOUNTS].get_key(request.match_info["key_id"])
    return web.json_response(key_json(key, _now_ms(request)))


@routes.post("/keys/{key_id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    key = await request.config_dict[ACCOUNTS].revoke_key(request.match_info["key_id"])
    return web.json_response(key_json(key, _now_ms(request)))


@routes.post("/keys/{key_id}/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    grace = body.get("grace_seconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool) or grace < 0):
        raise bad_request("`grace_seconds` must be a whole number of seconds, 0 or more.")
    issued = await request.config_dict[ACCOUNTS].rotate_key(request.match_info["key_id"], grace_seconds=grace or None)
    return web.json_response(_issued_json(request, issued), status=201)
