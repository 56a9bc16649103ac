"""/admin/v1/usage/summary: totals over the last N hours (`windows.last_hours`), read from the rollups, never raw rows."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.domain.money import amount
from noor_daemon.domain.windows import last_hours
from noor_daemon.ledger import rollups
from noor_daemon.state import ACCOUNTS, LEDGER, SETTINGS

routes = web.RouteTableDef()


@routes.get("/usage/summary")
async def usage_summary(request: web.Request) -> web.Response:
    try:
        hours = int(request.query.get("hours", "24"))
    except ValueError:
        raise bad_request("`hours` must be a whole number.") from None
    if not 1 <= hours <= 24 * 366:
        raise bad_request("`hours` must be between 1 and 8784.")
    settings = request.config_dict[SETTINGS]
    now_ms = int(settings.clock.now() * 1000)
    account_id = None
    if account_ref := request.query.get("account"):
        account_id = (await request.config_dict[ACCOUNTS].get_account(account_ref)).id
    rows_sql, params = rollups.union(
        "model, sum(requests) AS requests, sum(errors) AS errors, sum(prompt_tokens) AS prompt_tokens, "
        "sum(completion_tokens) AS completion_tokens, sum(latency_ms_sum) AS latency_ms_sum, sum(cost) AS cost, "
        "sum(unpriced) AS unpriced",
        last_hours(now_ms, hours),
        account_id,
        group_by="model",
    )
    rows = await request.config_dict[LEDGER].fetchall(
        f"""SELECT model, sum(requests) AS requests, sum(errors) AS errors,
                   sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
                   sum(latency_ms_sum) AS latency_ms_sum, sum(cost) AS cost, sum(unpriced) AS unpriced
            FROM ({rows_sql}) AS u GROUP BY model ORDER BY model""",
        tuple(params),
    )
    models = [
        {
            "model": r["model"] or None,
            "requests": r["requests"],
            "errors": r["errors"],
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "mean_latency_ms": round(r["latency_ms_sum"] / r["requests"], 2) if r["requests"] else None,
            "cost": amount(int(r["cost"])) if not r["unpriced"] or r["cost"] else None,
        }
        for r in rows
    ]
    totals = {k: sum(m[k] for m in models) for k in ("requests", "errors", "prompt_tokens", "completion_tokens")}
    totals["cost"] = amount(sum(int(r["cost"]) for r in rows))
    return web.json_response({"hours": hours, "models": models, "totals": totals})
