"""/admin/v1/routes: every upstream route with its breaker state and moving aggregates."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.state import PROXY

routes = web.RouteTableDef()


@routes.get("/routes")
async def list_routes(request: web.Request) -> web.Response:
    return web.json_response({"data": request.config_dict[PROXY].router.snapshot()})
