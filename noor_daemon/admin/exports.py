"""/admin/v1/accounts/{ref}/export: the account's data, streamed."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.keys import ACCOUNTS, LEDGER, SETTINGS
from noor_daemon.privacy import export

routes = web.RouteTableDef()


@routes.get("/accounts/{ref}/export")
async def export_account(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise bad_request("`format` must be json or csv.")
    store = request.config_dict[ACCOUNTS]
    ledger = request.config_dict[LEDGER]
    account = await store.get_account(request.match_info["ref"])
    total = await export.count_events(ledger, account.id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/json" if fmt == "json" else "text/csv",
            "Content-Disposition": f'attachment; filename="noorapi-export-{account.id}.{fmt}"',
            "X-Noor-Export-Events": str(total),
        }
    )
    await response.prepare(request)
    if fmt == "json":
        now_ms = int(request.config_dict[SETTINGS].clock.now() * 1000)
        chunks = export.export_json(ledger, account, await store.list_keys(account.id), now_ms)
    else:
        chunks = export.export_csv(ledger, account)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
