"""/v1/me data rights for a key holder: export, and deletion in two steps (request, then confirm with the token)."""

from __future__ import annotations

import orjson
from aiohttp import web

from noor_daemon.domain import errors
from noor_daemon.privacy import export
from noor_daemon.privacy.service import InvalidToken
from noor_daemon.selfservice.account import caller
from noor_daemon.state import KEYRING, PRIVACY

routes = web.RouteTableDef()


def _account(request: web.Request):
    key = caller(request, suspended_account_ok=True)  # access and deletion survive a suspension
    return request.app[KEYRING].accounts[key.account_id]


@routes.get("/v1/me/export")
async def my_export(request: web.Request) -> web.StreamResponse:
    """The caller's own data: JSON (everything) or CSV (usage events)."""
    account = _account(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise errors.bad_request("`format` must be json or csv.", param="format")
    return await export.respond(request, request.app[PRIVACY], account, fmt, actor="self")


@routes.post("/v1/me/deletion")
async def request_deletion(request: web.Request) -> web.Response:
    """Step one: a confirmation token (valid 24 hours). Nothing is deleted yet."""
    account = _account(request)
    issued = await request.app[PRIVACY].request_deletion(account)
    return web.json_response(
        {
            **issued,
            "confirm": "POST /v1/me/deletion/confirm with {\"token\": …} to delete this account, its keys and its usage.",
        },
        status=202,
    )


@routes.post("/v1/me/deletion/confirm")
async def confirm_deletion(request: web.Request) -> web.Response:
    """Step two: with the token, the account is deleted; every key of it stops working at once."""
    account = _account(request)
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        raise errors.bad_request("The body must be JSON: {\"token\": \"…\"}.") from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise errors.bad_request("`token` is required: the one POST /v1/me/deletion returned.", param="token")
    try:
        erasure = await request.app[PRIVACY].confirm_deletion(account, token)
    except InvalidToken as exc:
        raise errors.bad_request(str(exc), code="invalid_confirmation_token", param="token") from None
    return web.json_response(erasure.json())
