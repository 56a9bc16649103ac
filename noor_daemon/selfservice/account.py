"""/v1/me and /v1/me/quota: who the caller is and what its limits are; the caller check every /v1/me route uses."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.domain.accounts import ApiKey
from noor_daemon.domain.serialize import account_json, key_json
from noor_daemon.limits.report import quota_report
from noor_daemon.state import ACCOUNTS, KEYRING, LIMITER, PROXY, SETTINGS

routes = web.RouteTableDef()


def caller(request: web.Request) -> ApiKey:
    """The key making this request; raises GatewayError (401/403) like the proxy does."""
    return request.app[PROXY].guarded_authenticate(request)


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
