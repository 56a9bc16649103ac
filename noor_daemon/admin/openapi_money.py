"""The OpenAPI description of /admin/v1/spend and /admin/v1/prices (`admin/spend.py`)."""

from __future__ import annotations

_MONEY = {"type": "number", "description": "In the configured currency; an estimate from the price table"}
_MAYBE_MONEY = {"type": ["number", "null"]}
_UNAUTHORIZED = {
    "description": "Missing or wrong admin token",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

SCHEMAS = {
    "SpendLine": {
        "type": "object",
        "required": ["requests", "tokens", "cost", "unpriced_calls", "budget", "budget_left"],
        "properties": {
            "account": {"type": ["string", "null"]},
            "key": {"type": ["string", "null"]},
            "model": {"type": ["string", "null"]},
            "email": {"type": "string"},
            "prefix": {"type": "string"},
            "requests": {"type": "integer"},
            "tokens": {"type": "integer"},
            "cost": _MONEY,
            "unpriced_calls": {"type": "integer", "description": "Calls that used tokens of a model nobody priced"},
            "budget": _MAYBE_MONEY,
            "budget_left": _MAYBE_MONEY,
        },
    },
    "Spend": {
        "type": "object",
        "required": ["period", "start", "end", "by", "currency", "total", "data", "note"],
        "properties": {
            "period": {"type": "string", "enum": ["day", "month"]},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "by": {"type": "string", "enum": ["account", "key", "model"]},
            "currency": {"type": "string"},
            "total": _MONEY,
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/SpendLine"}},
            "note": {"type": "string"},
        },
    },
    "ModelPrice": {
        "type": "object",
        "required": ["model", "provider", "upstream_model", "source", "input_per_million", "output_per_million",
                     "cached_input_per_million", "cache_write_per_million"],
        "properties": {
            "model": {"type": "string"},
            "provider": {"type": "string"},
            "upstream_model": {"type": "string"},
            "source": {"type": ["string", "null"], "enum": ["table", "config", "local", None],
                       "description": "null: no price is known (the model's calls are listed as unpriced)"},
            "input_per_million": _MAYBE_MONEY,
            "output_per_million": _MAYBE_MONEY,
            "cached_input_per_million": _MAYBE_MONEY,
            "cache_write_per_million": _MAYBE_MONEY,
        },
    },
    "Prices": {
        "type": "object",
        "required": ["table_compiled", "table_currency", "currency", "data", "budgets"],
        "properties": {
            "table_compiled": {"type": "string"},
            "table_currency": {"type": "string"},
            "currency": {"type": "string"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/ModelPrice"}},
            "budgets": {"type": "array", "items": {"type": "string"}},
        },
    },
}

PATHS = {
    "/spend": {
        "get": {
            "summary": "Spend this day or month per account, key or model, next to the budgets",
            "parameters": [
                {"name": "period", "in": "query", "schema": {"type": "string", "enum": ["day", "month"], "default": "month"}},
                {"name": "by", "in": "query", "schema": {"type": "string", "enum": ["account", "key", "model"], "default": "account"}},
            ],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Spend"}}}},
                "400": {"description": "Invalid request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": _UNAUTHORIZED,
            },
        }
    },
    "/prices": {
        "get": {
            "summary": "What each configured model costs now, and where the price comes from",
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prices"}}}},
                "401": _UNAUTHORIZED,
            },
        }
    },
}
