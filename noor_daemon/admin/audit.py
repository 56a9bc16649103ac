"""/admin/v1/audit: the audit log, newest first, filtered by account and action, paged by id."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.privacy import _int_query
from noor_daemon.state import AUDIT, PRIVACY

routes = web.RouteTableDef()


@routes.get("/audit")
async def audit_log(request: web.Request) -> web.Response:
    """`account` is an id or an email (an erased account's email finds its pseudonymous entries);
    `action` matches exactly or with `*` (`key.*`); `before` pages back from an entry id."""
    account = request.query.get("account")
    account_id = await request.config_dict[PRIVACY].account_ref(account) if account else None
    limit = _int_query(request, "limit", 100, 1, 1000) or 100
    before = _int_query(request, "before", None, 1, 2**62)
    rows = await request.config_dict[AUDIT].entries(
        account_id=account_id, action=request.query.get("action") or None, limit=limit, before_id=before
    )
    return web.json_response({"data": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None})
