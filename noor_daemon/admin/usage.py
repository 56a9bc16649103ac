"""/admin/v1/usage: totals read from the hourly rollups, never from raw rows."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.keys import ACCOUNTS, LEDGER, SETTINGS
from noor_daemon.ledger.usage import HOUR_MS

routes = web.RouteTableDef()


@routes.get("/usage/summary")
async def usage_summary(request: web.Request) -> web.Response:
    try:
        hours = int(request.query.get("hours", "24"))
    except ValueError:
        raise bad_request("`hours` must be a whole number.") from None
    if not 1 <= hours <= 24 * 366:
        raise bad_request("`hours` must be between 1 and 8784.")
    now_ms = int(request.config_dict[SETTINGS].clock.now() * 1000)
    since = now_ms - now_ms % HOUR_MS - (hours - 1) * HOUR_MS
    sql = """SELECT model, sum(requests) AS requests, sum(errors) AS errors,
                    sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
                    sum(latency_ms_sum) AS latency_ms_sum
             FROM usage_hourly WHERE hour >= ?"""
    params: list = [since]
    account_ref = request.query.get("account")
    if account_ref:
        account = await request.config_dict[ACCOUNTS].get_account(account_ref)
        sql += " AND account_id = ?"
        params.append(account.id)
    rows = await request.config_dict[LEDGER].fetchall(sql + " GROUP BY model ORDER BY model", tuple(params))
    models = [
        {
            "model": r["model"] or None,
            "requests": r["requests"],
            "errors": r["errors"],
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "mean_latency_ms": round(r["latency_ms_sum"] / r["requests"], 2) if r["requests"] else None,
        }
        for r in rows
    ]
    totals = {k: sum(m[k] for m in models) for k in ("requests", "errors", "prompt_tokens", "completion_tokens")}
    return web.json_response({"hours": hours, "models": models, "totals": totals})
