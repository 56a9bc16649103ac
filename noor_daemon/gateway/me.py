"""/v1/me: self-service for a key holder, limited to the key's own account."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.limits import quota_report
from noor_daemon.admin.serialize import account_json, key_json
from noor_daemon.gateway import openai_wire
from noor_daemon.gateway.auth import ApiKey
from noor_daemon.gateway.errors import GatewayError
from noor_daemon.keys import ACCOUNTS, KEYRING, LIMITER, PROXY, SETTINGS

routes = web.RouteTableDef()


def caller(request: web.Request) -> ApiKey:
    """The key making this request; raises GatewayError (401/403) like the proxy does."""
    return request.app[PROXY].guarded_authenticate(request)


@web.middleware
async def me_errors(request: web.Request, handler) -> web.StreamResponse:
    """/v1/me speaks OpenAI's error shape, like the rest of /v1."""
    if not request.path.startswith("/v1/me"):
        return await handler(request)
    try:
        return await handler(request)
    except GatewayError as error:
        return openai_wire.error_response(error)


@routes.get("/v1/me")
async def me(request: web.Request) -> web.Response:
    key = caller(request)
    account = request.app[KEYRING].accounts[key.account_id]
    now_ms = int(request.app[SETTINGS].clock.now() * 1000)
    keys = await request.app[ACCOUNTS].list_keys(account.id)
    return web.json_response(
        {"account": account_json(account), "key": key_json(key, now_ms), "api_keys": [key_json(k, now_ms) for k in keys]}
    )


@routes.get("/v1/me/quota")
async def my_quota(request: web.Request) -> web.Response:
    """The caller's own limits: its account's plan and its key's overrides, with use and reset times."""
    key = caller(request)
    account = request.app[KEYRING].accounts[key.account_id]
    now_ms = int(request.app[SETTINGS].clock.now() * 1000)
    return web.json_response(await quota_report(request.app[LIMITER], request.app[ACCOUNTS], account, now_ms, key.id))
