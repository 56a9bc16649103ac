"""/admin/v1/spend: what was spent this day or month, per account, key or model, next to the budgets.

Read from the rollups over the calendar period (`windows.calendar_period`): each call's cost as it was
metered, so a price changed since does not rewrite it. `/admin/v1/prices` lists what each model costs now.
"""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.clock import iso
from noor_daemon.domain.money import amount, shipped_table
from noor_daemon.domain.windows import calendar_period
from noor_daemon.ledger import rollups
from noor_daemon.limits.enforcer import BUDGETS, NO_KEY
from noor_daemon.state import KEYRING, LEDGER, LIMITER, PROXY, SETTINGS

routes = web.RouteTableDef()
GROUPS = {"account": "account_id", "key": "key_id", "model": "model"}


@routes.get("/spend")
async def spend(request: web.Request) -> web.Response:
    period = request.query.get("period", "month")
    group = request.query.get("by", "account")
    if period not in ("day", "month"):
        raise bad_request("`period` must be day or month.")
    if group not in GROUPS:
        raise bad_request(f"`by` must be one of: {', '.join(GROUPS)}.")
    settings = request.config_dict[SETTINGS]
    now_ms = int(settings.clock.now() * 1000)
    window = calendar_period(period, now_ms)
    column = GROUPS[group]
    union, params = rollups.union(
        f"{column} AS g, sum(requests) AS requests, sum(prompt_tokens + completion_tokens) AS tokens, sum(cost) AS cost, "
        "sum(unpriced) AS unpriced",
        window,
        group_by=column,
    )
    rows = await request.config_dict[LEDGER].fetchall(
        f"""SELECT g, sum(requests) AS requests, sum(tokens) AS tokens, sum(cost) AS cost, sum(unpriced) AS unpriced
            FROM ({union}) AS u GROUP BY g ORDER BY sum(cost) DESC, g""",
        tuple(params),
    )
    keyring, limiter = request.config_dict[KEYRING], request.config_dict[LIMITER]
    budget_name = f"budget_per_{period}"
    data = []
    for r in rows:
        entry = {
            group: r["g"] or None, "requests": r["requests"], "tokens": r["tokens"], "cost": amount(int(r["cost"] or 0)),
            "unpriced_calls": r["unpriced"], "budget": None, "budget_left": None,
        }
        if group == "account" and r["g"] in keyring.accounts:
            account = keyring.accounts[r["g"]]
            entry["email"] = account.email
            scope = next(iter(limiter.scopes(NO_KEY, account)), None)
        elif group == "key" and r["g"] in keyring.keys:
            key = keyring.keys[r["g"]]
            entry["prefix"] = key.prefix
            account = keyring.accounts.get(key.account_id)
            scope = next((s for s in limiter.scopes(key, account) if s.kind == "key"), None) if account else None
        else:
            scope = None
        if scope is not None and budget_name in scope.limits:
            entry["budget"] = amount(scope.limits[budget_name])
            entry["budget_left"] = amount(max(0, scope.limits[budget_name] - int(r["cost"] or 0)))
        data.append(entry)
    return web.json_response(
        {
            "period": period,
            "start": iso(window.start),
            "end": iso(window.end),
            "by": group,
            "currency": settings.config.config.budgets.currency,
            "total": amount(sum(int(r["cost"] or 0) for r in rows)),
            "data": data,
            "note": "estimates from the price table in effect when each call was metered (noor prices)",
        }
    )


@routes.get("/prices")
async def prices(request: web.Request) -> web.Response:
    """What each configured model costs now, and where its price comes from; models with no price are flagged."""
    settings = request.config_dict[SETTINGS]
    config = settings.config.config
    book = request.config_dict[PROXY].prices
    compiled, currency, _ = shipped_table()
    models = []
    for model in config.models:
        for route in model.routes:
            provider = route.provider
            target = route.model or model.name
            price = book.price(provider, target)
            models.append(
                {
                    "model": model.name, "provider": provider, "upstream_model": target,
                    "source": price.source if price else None,
                    "input_per_million": amount(price.input * 1_000_000) if price else None,
                    "output_per_million": amount(price.output * 1_000_000) if price else None,
                    "cached_input_per_million": amount(price.cached_input * 1_000_000) if price else None,
                    "cache_write_per_million": amount(price.cache_write * 1_000_000) if price else None,
                }
            )
    return web.json_response(
        {"table_compiled": compiled, "table_currency": currency, "currency": config.budgets.currency, "data": models,
         "budgets": [name for name, _ in BUDGETS]}
    )

