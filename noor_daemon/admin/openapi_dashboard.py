"""The OpenAPI paths of the dashboard's endpoints (events, overview, upstreams, catalog, usage series), merged into openapi.py's document."""

from __future__ import annotations

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict:
    text = {"400": "Invalid request", "401": "Missing or wrong admin token", "404": "Not found"}
    return {status: _json(_ERROR, text[status]) for status in statuses}


_NUMBERS = {"type": "array", "items": {"type": ["number", "null"]}}
_INTS = {"type": "array", "items": {"type": "integer"}}
_SUMMARY = {
    "type": "object",
    "properties": {
        "seconds": {"type": "number"},
        "requests": {"type": "integer"},
        "errors": {"type": "integer"},
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "rpm": {"type": "number", "description": "Requests per minute"},
        "tpm": {"type": "number", "description": "Tokens per minute"},
        "error_rate": {"type": ["number", "null"], "description": "0..1; null without requests"},
        "latency_p50_ms": {"type": ["number", "null"]},
        "latency_p95_ms": {"type": ["number", "null"]},
        "ttft_p50_ms": {"type": ["number", "null"]},
    },
}

CALL_EVENT = {
    "type": "object",
    "description": "One metered call. No content and no email: the account by id, the key by its display prefix.",
    "required": ["seq", "ts", "model", "endpoint", "status"],
    "properties": {
        "seq": {"type": "integer", "description": "Also the SSE `id:`; send it back as Last-Event-ID to resume"},
        "ts": {"type": "string", "format": "date-time"},
        "ts_ms": {"type": "integer"},
        "account_id": {"type": ["string", "null"]},
        "key_prefix": {"type": ["string", "null"]},
        "model": {"type": "string"},
        "provider": {"type": ["string", "null"]},
        "endpoint": {"type": "string"},
        "status": {"type": "integer"},
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "latency_ms": {"type": "number"},
        "ttft_ms": {"type": ["number", "null"]},
        "stream": {"type": "boolean"},
        "estimated": {"type": "boolean"},
        "cost": {
            "type": ["number", "null"],
            "description": "In the [budgets] currency, at the prices in effect when the call was metered; null when "
            "nobody priced the model",
        },
    },
}

_SERIES_TOTALS = {
    "type": "object",
    "properties": {
        "requests": {"type": "integer"},
        "errors": {"type": "integer"},
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "cost": {"type": ["number", "null"], "description": "Estimated from [prices]; null when nothing was priced"},
        "unpriced_models": {"type": "array", "items": {"type": "string"}},
    },
}

USAGE_SERIES = {
    "type": "object",
    "properties": {
        "range": {"type": "string", "enum": ["hour", "day", "7d", "30d", "90d"]},
        "group": {"type": "string", "enum": ["model", "key", "account"]},
        "account_id": {"type": ["string", "null"], "description": "The account asked for, null for all"},
        "bucket_seconds": {"type": "integer"},
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "now": {"type": "string", "format": "date-time"},
        "currency": {"type": "string", "description": "Of every cost in the document ([budgets] currency)"},
        "buckets": {"type": "array", "items": {"type": "string", "format": "date-time"}},
        "source": {
            "type": "string", "enum": ["memory", "usage_hourly", "usage_daily"],
            "description": "Where the buckets come from: the last hour per minute from memory, hours from the hourly "
            "rollups, days from the daily ones (the first and the current day's hours from the hourly ones)",
        },
        "series": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string", "description": "Model name, key id or account id; `(other)` folds the rest"},
                    "label": {"type": "string"},
                    "account_id": {"type": ["string", "null"], "description": "The key's account (group=key only)"},
                    "requests": _INTS,
                    "errors": _INTS,
                    "prompt_tokens": _INTS,
                    "completion_tokens": _INTS,
                    "cost": {"type": "array", "items": {"type": "number"}, "description": "Per bucket, priced calls only"},
                    "totals": _SERIES_TOTALS,
                },
            },
        },
        "groups": {"type": "integer"},
        "totals": {
            **_SERIES_TOTALS,
            "properties": {
                **_SERIES_TOTALS["properties"],
                "priced": {"type": "boolean", "description": "Whether the config has any [prices]"},
            },
        },
    },
}

_PROVIDER_HEALTH = {
    "type": "object",
    "required": ["name", "kind", "host", "routes", "requests", "errors", "error_rate", "latency_ms", "state"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string"},
        "host": {"type": ["string", "null"], "description": "The base URL's host; null for the simulator"},
        "routes": {"type": "integer"},
        "requests": {"type": "integer"},
        "errors": {"type": "integer"},
        "error_rate": {"type": ["number", "null"], "description": "0..1; null without requests"},
        "latency_ms": {"type": ["number", "null"]},
        "state": {"type": "string", "enum": ["ok", "degraded", "down", "idle"]},
    },
}

_ROUTE_STATUS = {
    "type": "object",
    "required": [
        "provider", "model", "upstream_model", "breaker", "consecutive_failures",
        "requests", "errors", "error_rate", "latency_ms", "ttft_ms", "state",
    ],
    "properties": {
        "provider": {"type": "string"},
        "model": {"type": "string"},
        "upstream_model": {"type": "string"},
        "breaker": {"type": ["string", "null"], "enum": ["closed", "open", "half_open", None]},
        "consecutive_failures": {"type": "integer"},
        "requests": {"type": "integer"},
        "errors": {"type": "integer"},
        "error_rate": {"type": ["number", "null"], "description": "0..1; null without requests"},
        "latency_ms": {"type": ["number", "null"]},
        "ttft_ms": {"type": ["number", "null"]},
        "state": {"type": "string", "enum": ["ok", "degraded", "down", "idle"]},
    },
}

PATHS = {
    "/events": {
        "get": {
            "summary": "Live feed of metered calls (server-sent events)",
            "description": (
                "`event: call` per call (data: a CallEvent), `event: dropped` when this reader fell behind and "
                "calls were skipped, comments as keep-alives. Starts with recent calls, or those after Last-Event-ID."
            ),
            "parameters": [
                {"name": "backlog", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 200}},
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {"description": "The stream", "content": {"text/event-stream": {"schema": CALL_EVENT}}},
                **_errors("400", "401"),
            },
        }
    },
    "/overview": {
        "get": {
            "summary": "Request rate, tokens/min, error rate and latency p50/p95 over the last hour (in memory)",
            "parameters": [
                {"name": "window", "in": "query", "schema": {"type": "integer", "minimum": 10, "maximum": 3600}},
                {"name": "step", "in": "query", "schema": {"type": "integer", "enum": [10, 30, 60, 120, 300]}},
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "now": {"type": "string", "format": "date-time"},
                            "window_seconds": {"type": "integer"},
                            "step_seconds": {"type": "integer"},
                            "start": {"type": "string", "format": "date-time"},
                            "series": {
                                "type": "object",
                                "properties": {
                                    name: _NUMBERS
                                    for name in (
                                        "requests", "errors", "tokens", "rpm", "tpm", "error_rate",
                                        "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms",
                                    )
                                },
                            },
                            "window": _SUMMARY,
                            "last_minute": _SUMMARY,
                            "loading": {"type": "boolean"},
                            "feed": {"type": "object"},
                        },
                    }
                ),
                **_errors("400", "401"),
            },
        }
    },
    "/upstreams": {
        "get": {
            "summary": "Providers and routes: breaker state and the last hour's requests, error rate, latency",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["since", "now", "providers", "routes"],
                        "properties": {
                            "since": {"type": "string", "format": "date-time"},
                            "now": {"type": "string", "format": "date-time"},
                            "providers": {"type": "array", "items": _PROVIDER_HEALTH},
                            "routes": {"type": "array", "items": _ROUTE_STATUS},
                        },
                    }
                ),
                **_errors("401"),
            },
        }
    },
    "/catalog": {
        "get": {
            "summary": "Plans with their limits, model names, prices and whether billing is configured (for forms and estimates)",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "plans": {"type": "object", "additionalProperties": {"type": "object"}},
                            "default_plan": {"type": "string"},
                            "models": {"type": "array", "items": {"type": "string"}},
                            "prices": {"type": "object", "additionalProperties": {"type": "object"}},
                            "billing": {"type": "object", "properties": {"configured": {"type": "boolean"}}},
                            "retention_days": {"type": "integer"},
                            "currency": {"type": "string", "description": "Of costs and budgets ([budgets] currency)"},
                        },
                    }
                ),
                **_errors("401"),
            },
        }
    },
    "/usage/series": {
        "get": {
            "summary": "Requests and tokens over time by model, key or account, with estimated cost",
            "parameters": [
                {"name": "range", "in": "query", "schema": {"type": "string", "enum": ["hour", "day", "7d", "30d", "90d"]}},
                {"name": "group", "in": "query", "schema": {"type": "string", "enum": ["model", "key", "account"]}},
                {"name": "account", "in": "query", "schema": {"type": "string"}, "description": "Account id or email"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50}},
            ],
            "responses": {"200": _json(USAGE_SERIES), **_errors("400", "401", "404")},
        }
    },
}
