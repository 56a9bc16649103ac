"""/v1/me/usage: a key holder's own account's usage over time, by model or by its own keys."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import AdminError
from noor_daemon.admin.live import LIVE
from noor_daemon.admin.series import parse_query, usage_series
from noor_daemon.gateway import errors
from noor_daemon.gateway.me import caller
from noor_daemon.keys import KEYRING, LEDGER, SETTINGS

routes = web.RouteTableDef()


@routes.get("/v1/me/usage")
async def my_usage(request: web.Request) -> web.Response:
    """Same document as /admin/v1/usage/series, limited to the caller's account (`group` model or key)."""
    key = caller(request)
    try:
        range_name, group, limit = parse_query(request, groups=("model", "key"))
    except AdminError as exc:
        raise errors.bad_request(exc.message) from None
    settings = request.app[SETTINGS]
    return web.json_response(
        await usage_series(
            ledger=request.app[LEDGER],
            keyring=request.app[KEYRING],
            minutes=request.app[LIVE].minutes,
            config=settings.config.config,
            now_ms=int(settings.clock.now() * 1000),
            range_name=range_name,
            group=group,
            account_id=key.account_id,
            limit=limit,
        )
    )
