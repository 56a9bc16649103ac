"""/v1/me and /v1/me/quota: who the caller is and what its limits are; the caller check every /v1/me route uses."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.domain.accounts import ApiKey
from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.proxy import presented_key
from noor_daemon.domain.serialize import account_json, key_json
from noor_daemon.limits.report import quota_report
from noor_daemon.state import ACCOUNTS, KEYRING, LIMITER, PROXY, SETTINGS

routes = web.RouteTableDef()


def caller(request: web.Request, *, suspended_account_ok: bool = False) -> ApiKey:
    """The key making this request; raises GatewayError (401/403) like the proxy does.

    With `suspended_account_ok` a live key of a suspended account is let through: the rights of access and
    to ask for deletion survive a suspension, only API calls stop. A suspended or revoked key never is.
    """
    try:
        return request.app[PROXY].guarded_authenticate(request)
    except GatewayError as error:
        if not (suspended_account_ok and error.code == "account_suspended"):
            raise
        # Every check but the account's passed (the account's is the last): the key itself is live.
        key = request.app[KEYRING].lookup(presented_key(request) or "")
        if key is None:
            raise
        return key


@routes.get("/v1/me")
async def me(request: web.Request) -> web.Response:
    key = caller(request, suspended_account_ok=True)
    account = request.app[KEYRING].accounts[key.account_id]
    now_ms = int(request.app[SETTINGS].clock.now() * 1000)
    keys = await request.app[ACCOUNTS].list_keys(account.id)
    return web.json_response(
        {"account": account_json(account), "key": key_json(key, now_ms), "api_keys": [key_json(k, now_ms) for k in keys]}
    )


@routes.get("/v1/me/quota")
async def my_quota(request: web.Request) -> web.Response:
    """The caller's own limits: its account's plan and its key's overrides, with use and reset times."""
    key = caller(request, suspended_account_ok=True)
    account = request.app[KEYRING].accounts[key.account_id]
    now_ms = int(request.app[SETTINGS].clock.now() * 1000)
    return web.json_response(await quota_report(request.app[LIMITER], request.app[ACCOUNTS], account, now_ms, key.id))
