"""/admin/v1/usage/series: requests and tokens over time by model, key or account (`views/series.py`)."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.state import ACCOUNTS, KEYRING, LEDGER, LIVE, SETTINGS
from noor_daemon.views.series import QueryError, parse_query, usage_series

routes = web.RouteTableDef()


@routes.get("/usage/series")
async def series(request: web.Request) -> web.Response:
    try:
        range_name, group, limit = parse_query(request.query)
    except QueryError as exc:
        raise bad_request(str(exc)) from None
    account_id = None
    if ref := request.query.get("account"):
        account_id = (await request.config_dict[ACCOUNTS].get_account(ref)).id
    settings = request.config_dict[SETTINGS]
    return web.json_response(
        await usage_series(
            ledger=request.config_dict[LEDGER],
            keyring=request.config_dict[KEYRING],
            minutes=request.config_dict[LIVE].minutes,
            config=settings.config.config,
            now_ms=int(settings.clock.now() * 1000),
            range_name=range_name,
            group=group,
            account_id=account_id,
            limit=limit,
            days=request.config_dict[LIVE].days,
        )
    )
