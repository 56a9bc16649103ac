"""/admin/v1/mail/outbox: how transactional mail is doing. Kinds, states and times; never an address."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.privacy import _int_query
from noor_daemon.state import OUTBOX

routes = web.RouteTableDef()


@routes.get("/mail/outbox")
async def outbox(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 50, 1, 500) or 50
    return web.json_response(await request.config_dict[OUTBOX].summary(limit))
