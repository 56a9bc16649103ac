"""/admin/v1/accounts/{ref}/export: the account's data, streamed; each export is recorded as an access request."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.privacy import export
from noor_daemon.state import ACCOUNTS, PRIVACY

routes = web.RouteTableDef()


@routes.get("/accounts/{ref}/export")
async def export_account(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise bad_request("`format` must be json or csv.")
    account = await request.config_dict[ACCOUNTS].get_account(request.match_info["ref"])
    return await export.respond(request, request.config_dict[PRIVACY], account, fmt, actor="admin")
