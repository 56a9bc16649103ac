"""/v1/me/usage: a key holder's own account's usage over time, by model or by its own keys."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.domain import errors
from noor_daemon.selfservice.account import caller
from noor_daemon.state import KEYRING, LEDGER, LIVE, SETTINGS
from noor_daemon.views.series import QueryError, parse_query, usage_series

routes = web.RouteTableDef()


@routes.get("/v1/me/usage")
async def my_usage(request: web.Request) -> web.Response:
    """Same document as /admin/v1/usage/series, limited to the caller's account (`group` model or key)."""
    key = caller(request, suspended_account_ok=True)
    try:
        range_name, group, limit = parse_query(request.query, groups=("model", "key"))
    except QueryError as exc:
        raise errors.bad_request(str(exc)) from None
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
            days=request.app[LIVE].days,
        )
    )
