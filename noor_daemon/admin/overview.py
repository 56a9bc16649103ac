"""/admin/v1/overview and /admin/v1/upstreams: what the dashboard's overview charts and health panel show.

The overview is read from the daemon's in-memory last hour (`live.MetricsWindow`): request
and token rates, error rate and latency percentiles, with no identity in it and no query.
Upstream health joins the configured providers and routes, each route's circuit breaker,
and the last hour or two of `route_hourly` (aggregates per provider and model only).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.clock import iso
from noor_daemon.ledger.usage import HOUR_MS
from noor_daemon.state import LEDGER, LIVE, PROXY, SETTINGS
from noor_daemon.views.live import WINDOW_SECONDS

routes = web.RouteTableDef()

STEPS = (10, 30, 60, 120, 300)


def _query_int(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise bad_request(f"`{name}` must be a whole number of seconds.") from None


@routes.get("/overview")
async def overview(request: web.Request) -> web.Response:
    window = _query_int(request, "window", WINDOW_SECONDS)
    step = _query_int(request, "step", 60)
    if step not in STEPS:
        raise bad_request(f"`step` must be one of: {', '.join(map(str, STEPS))}.")
    if not step <= window <= WINDOW_SECONDS:
        raise bad_request(f"`window` must be between `step` and {WINDOW_SECONDS} seconds.")
    request.config_dict[LEDGER].publish()  # calls committed alone, told to the views in batches
    live = request.config_dict[LIVE]
    report = live.window.report(window, step)
    report["loading"] = not live.seeded.is_set()
    report["feed"] = {"subscribers": len(live.feed.subscribers), "dropped": live.feed.dropped, "seq": live.feed.seq}
    return web.json_response(report)


def _state(breakers: list[str], requests: int, errors: int) -> str:
    """ok, degraded (a half-open breaker or many errors), down (every breaker open), idle (no traffic)."""
    if breakers and all(state == "open" for state in breakers):
        return "down"
    if "open" in breakers or "half_open" in breakers or (requests >= 5 and errors / requests >= 0.2):
        return "degraded"
    if not requests:
        return "idle"
    return "ok"


@routes.get("/upstreams")
async def upstreams(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    config = settings.config.config
    now_ms = int(settings.clock.now() * 1000)
    since = now_ms - now_ms % HOUR_MS - HOUR_MS
    rows = await request.config_dict[LEDGER].fetchall(
        """SELECT provider, model, sum(requests) AS requests, sum(errors) AS errors,
                  sum(latency_ms_sum) AS latency, sum(ttft_ms_sum) AS ttft, sum(ttft_count) AS ttft_count
           FROM route_hourly WHERE hour >= ? GROUP BY provider, model ORDER BY provider, model""",
        (since,),
    )
    recent = {(r["provider"], r["model"]): dict(r) for r in rows}
    router = getattr(request.config_dict[PROXY], "router", None)
    breakers = {(b["provider"], b["model"]): b for b in (router.snapshot() if router is not None else [])}

    configured = [(route.provider, model.name, route.model) for model in config.models for route in model.routes]
    keys = list(dict.fromkeys([(p, m) for p, m, _ in configured] + list(recent)))
    route_rows = []
    for provider, model in keys:
        upstream_model = next((u for p, m, u in configured if p == provider and m == model), model)
        stats = recent.get((provider, model), {})
        breaker = breakers.get((provider, upstream_model)) or breakers.get((provider, model))
        requests, errors = stats.get("requests") or 0, stats.get("errors") or 0
        route_rows.append(
            {
                "provider": provider,
                "model": model,
                "upstream_model": upstream_model,
                "breaker": breaker["state"] if breaker else None,
                "consecutive_failures": breaker["consecutive_failures"] if breaker else 0,
                "requests": requests,
                "errors": errors,
                "error_rate": round(errors / requests, 4) if requests else None,
                "latency_ms": round(stats["latency"] / requests, 1) if requests else None,
                "ttft_ms": round(stats["ttft"] / stats["ttft_count"], 1) if stats.get("ttft_count") else None,
                "state": _state([breaker["state"]] if breaker else [], requests, errors),
            }
        )
    providers = []
    for provider in config.providers:
        mine = [r for r in route_rows if r["provider"] == provider.name]
        requests = sum(r["requests"] for r in mine)
        errors = sum(r["errors"] for r in mine)
        latency = sum((r["latency_ms"] or 0) * r["requests"] for r in mine)
        parts = urlsplit(provider.base_url) if provider.base_url else None
        providers.append(
            {
                "name": provider.name,
                "kind": provider.kind,
                "host": parts.netloc if parts else None,
                "routes": len(mine),
                "requests": requests,
                "errors": errors,
                "error_rate": round(errors / requests, 4) if requests else None,
                "latency_ms": round(latency / requests, 1) if requests else None,
                "state": _state([r["breaker"] for r in mine if r["breaker"]], requests, errors),
            }
        )
    return web.json_response({"since": iso(since), "now": iso(now_ms), "providers": providers, "routes": route_rows})


@routes.get("/catalog")
async def catalog(request: web.Request) -> web.Response:
    """What the daemon offers, for forms and estimates: plans with their limits, models, prices, billing state."""
    config = request.config_dict[SETTINGS].config.config
    plans = {name: config.plan(name).model_dump(exclude_none=True) for name in config.plan_names}
    stripe = getattr(config, "stripe", None) or getattr(config, "billing", None)
    return web.json_response(
        {
            "plans": plans,
            "default_plan": config.default_plan,
            "models": [model.name for model in config.models],
            "prices": {name: price.model_dump() for name, price in config.prices.items()},
            "billing": {"configured": stripe is not None},
            "retention_days": config.retention.usage_days,
            "currency": config.budgets.currency,
        }
    )
