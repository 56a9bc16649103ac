"""The OpenAPI document of the admin API, served at /admin/v1/openapi.json."""

from __future__ import annotations

from aiohttp import web

from noor_daemon import __version__
from noor_daemon.admin import openapi_billing, openapi_dashboard, openapi_money, openapi_privacy, openapi_security

routes = web.RouteTableDef()


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Invalid request"),
    "401": _json(_ref("Error"), "Missing or wrong admin token"),
    "404": _json(_ref("Error"), "Not found"),
}

_REF_PARAM = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Account id or email"}
_KEY_PARAM = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}

_TIME = {"type": ["string", "null"], "format": "date-time"}

_KEY_PROPERTIES = {
    "id": {"type": "string"},
    "account_id": {"type": "string"},
    "prefix": {"type": "string"},
    "masked": {"type": "string"},
    "name": {"type": ["string", "null"]},
    "models": {"type": ["array", "null"], "items": {"type": "string"}},
    "limits": {"type": ["object", "null"]},
    "status": {"type": "string"},
    "state": {"type": "string", "enum": ["active", "suspended", "revoked", "expired"]},
    "created_at": _TIME,
    "expires_at": _TIME,
    "revoked_at": _TIME,
    "last_used_at": _TIME,
}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "code", "message"],
                "properties": {"status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Account": {
        "type": "object",
        "required": ["id", "email", "plan", "status", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "email": {"type": "string"},
            "plan": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "suspended"]},
            "created_at": _TIME,
            "limits": {
                "type": ["object", "null"],
                "description": "The account's own limits and budgets (budgets in the configured currency), replacing its plan's",
                "additionalProperties": {"type": "number"},
            },
        },
    },
    "Key": {
        "type": "object",
        "required": ["id", "account_id", "prefix", "state", "created_at"],
        "properties": _KEY_PROPERTIES,
    },
    "Limits": {
        "type": "object",
        "additionalProperties": False,
        "description": "Limits (whole numbers) and budgets (amounts in the configured currency)",
        "properties": {
            **{
                name: {"type": "integer", "minimum": 1}
                for name in (
                    "requests_per_minute", "tokens_per_minute", "concurrent_requests",
                    "requests_per_day", "tokens_per_day", "tokens_per_month",
                )
            },
            "budget_per_day": {"type": "number", "exclusiveMinimum": 0},
            "budget_per_month": {"type": "number", "exclusiveMinimum": 0},
        },
    },
    "LimitStatus": {
        "type": "object",
        "required": ["scope", "scope_id", "limit", "value", "used", "remaining", "resets_at"],
        "properties": {
            "scope": {"type": "string", "enum": ["account", "key"]},
            "scope_id": {"type": "string"},
            "limit": {"type": "string"},
            "value": {"type": "number", "description": "A whole number; for a budget, an amount in the report's currency"},
            "used": {"type": "number"},
            "remaining": {"type": "number"},
            "resets_at": _TIME,
        },
    },
    "QuotaReport": {
        "type": "object",
        "required": ["account", "currency", "limits", "keys"],
        "properties": {
            "account": {"$ref": "#/components/schemas/Account"},
            "currency": {"type": "string", "description": "Of the budgets' rows ([budgets] currency)"},
            "limits": {"type": "array", "items": {"$ref": "#/components/schemas/LimitStatus"}},
            "keys": {"type": "array", "items": {"$ref": "#/components/schemas/KeyQuota"}},
        },
    },
    "ModelUsage": {
        "type": "object",
        "required": ["model", "requests", "errors", "prompt_tokens", "completion_tokens", "mean_latency_ms"],
        "properties": {
            "model": {"type": ["string", "null"]},
            "requests": {"type": "integer"},
            "errors": {"type": "integer"},
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "mean_latency_ms": {"type": ["number", "null"], "description": "null without requests"},
        },
    },
    "UsageSummary": {
        "type": "object",
        "required": ["hours", "models", "totals"],
        "properties": {
            "hours": {"type": "integer"},
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/ModelUsage"}},
            "totals": {
                "type": "object",
                "required": ["requests", "errors", "prompt_tokens", "completion_tokens"],
                "properties": {
                    name: {"type": "integer"} for name in ("requests", "errors", "prompt_tokens", "completion_tokens")
                },
            },
        },
    },
    "Route": {
        "type": "object",
        "required": ["provider", "model", "state", "error_rate", "requests", "failures"],
        "properties": {
            "provider": {"type": "string"},
            "model": {"type": "string"},
            "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
            "consecutive_failures": {"type": "integer"},
            "ttft_ms": {"type": ["number", "null"]},
            "error_rate": {"type": "number"},
            "requests": {"type": "integer"},
            "failures": {"type": "integer"},
        },
    },
    "KeyQuota": {
        "type": "object",
        "description": "A live key as in Key, except that `limits` holds its own limit rows (scope key), not its overrides.",
        "required": ["id", "account_id", "prefix", "state", "created_at", "limits"],
        "properties": {
            **_KEY_PROPERTIES,
            "limits": {"type": "array", "items": {"$ref": "#/components/schemas/LimitStatus"}},
        },
    },
    "Doctor": {
        "type": "object",
        "description": "Paths and names only: never a secret, never an account",
        "required": ["version", "config", "data_dir", "ledger", "keyring", "secrets", "admin_token", "limits", "server",
                     "billing", "mail", "retention"],
        "properties": {
            "version": {"type": "string"},
            "config": {
                "type": "object",
                "required": ["path", "simulator_only", "providers", "models"],
                "properties": {
                    "path": {"type": ["string", "null"], "description": "null: no file, the built-in simulator"},
                    "simulator_only": {"type": "boolean"},
                    "providers": {"type": "integer"},
                    "models": {"type": "integer"},
                },
            },
            "data_dir": {"type": "string"},
            "ledger": {
                "type": "object",
                "required": ["engine", "where", "healthy"],
                "properties": {
                    "engine": {"type": "string", "enum": ["sqlite", "postgresql"]},
                    "where": {"type": "string", "description": "the SQLite file, or the PostgreSQL URL without its password"},
                    "healthy": {"type": "boolean"},
                },
            },
            "keyring": {
                "type": "object",
                "required": ["backend", "usable"],
                "properties": {"backend": {"type": "string"}, "usable": {"type": "boolean"}},
            },
            "secrets": {
                "type": "object",
                "required": ["backend", "where", "usable"],
                "properties": {"backend": {"type": "string"}, "where": {"type": "string"}, "usable": {"type": "boolean"}},
            },
            "admin_token": {"type": "object", "required": ["source"], "properties": {"source": {"type": "string"}}},
            "limits": {"type": "string", "enum": ["local", "shared", "fallback"]},
            "server": {
                "type": "object",
                "required": ["tls", "admin_remote"],
                "properties": {"tls": {"type": "boolean"}, "admin_remote": {"type": "boolean"}},
            },
            "billing": {"type": "object", "required": ["configured"], "properties": {"configured": {"type": "boolean"}}},
            "mail": {
                "type": "object",
                "required": ["delivery", "where"],
                "properties": {"delivery": {"type": "string", "enum": ["smtp", "maildir"]}, "where": {"type": "string"}},
            },
            "retention": {"type": "object", "required": ["usage_days"], "properties": {"usage_days": {"type": "integer"}}},
        },
    },
    "IssuedKey": {
        "allOf": [
            _ref("Key"),
            {
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": {"type": "string"},
                    "previous_expires_at": {
                        **_TIME,
                        "description": "After a rotation with `grace_seconds`: when the replaced key stops working",
                    },
                },
            },
        ],
        "description": "A key with its full secret: returned once, at creation or rotation.",
    },
}


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "NoorAPI admin API", "version": __version__},
        "servers": [{"url": "/admin/v1"}],
        "components": {
            "schemas": {**SCHEMAS, **openapi_privacy.SCHEMAS, **openapi_billing.SCHEMAS, **openapi_money.SCHEMAS},
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
        "paths": {
            **openapi_dashboard.PATHS,  # events, overview, upstreams, usage series
            **openapi_privacy.PATHS,  # privacy requests, retention, policies, audit log, mail outbox
            **openapi_billing.PATHS,  # Stripe: billing state, per-account billing, Checkout and portal links
            **openapi_security.PATHS,  # admin token rotation, revocation by key prefix
            **openapi_money.PATHS,  # spend and budgets, the prices in force
            "/accounts": {
                "get": {
                    "summary": "List accounts",
                    "responses": {"200": _json({"type": "object", "properties": {"data": {"type": "array", "items": _ref("Account")}}}), **_ERRORS},
                },
                "post": {
                    "summary": "Create an account",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["email"],
                                    "properties": {"email": {"type": "string", "format": "email"}, "plan": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {"201": _json(_ref("Account"), "Created"), "409": _json(_ref("Error"), "Email taken"), **_ERRORS},
                },
            },
            "/accounts/{ref}": {
                "parameters": [_REF_PARAM],
                "get": {"summary": "Get an account", "responses": {"200": _json(_ref("Account")), **_ERRORS}},
                "patch": {
                    "summary": "Change an account's email, plan or status",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "email": {"type": "string", "format": "email"},
                                        "plan": {"type": "string"},
                                        "status": {"type": "string", "enum": ["active", "suspended"]},
                                        "limits": {
                                            "oneOf": [_ref("Limits"), {"type": "null"}],
                                            "description": "The account's own limits and budgets (null: its plan's)",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"200": _json(_ref("Account")), "409": _json(_ref("Error"), "Email taken"), **_ERRORS},
                },
                "delete": {
                    "summary": "Erase an account: keys, usage, rollups, mail; the audit log keeps a pseudonym",
                    "responses": {"200": _json(_ref("Erasure")), **_ERRORS},
                },
            },
            "/accounts/{ref}/export": {
                "parameters": [
                    _REF_PARAM,
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
                ],
                "get": {
                    "summary": "Export an account's data (streamed)",
                    "responses": {
                        "200": {"description": "The export", "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}},
                        **_ERRORS,
                    },
                },
            },
            "/keys": {
                "get": {
                    "summary": "List keys (masked)",
                    "parameters": [{"name": "account", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": _json({"type": "object", "properties": {"data": {"type": "array", "items": _ref("Key")}}}), **_ERRORS},
                },
                "post": {
                    "summary": "Create a key; the full key is in the answer once",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["account"],
                                    "properties": {
                                        "account": {"type": "string"},
                                        "name": {"type": "string"},
                                        "models": {"type": "array", "items": {"type": "string"}},
                                        "expires_in": {"type": "integer", "minimum": 1},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"201": _json(_ref("IssuedKey"), "Created"), **_ERRORS},
                },
            },
            "/keys/{key_id}": {
                "parameters": [_KEY_PARAM],
                "get": {"summary": "Get a key (masked)", "responses": {"200": _json(_ref("Key")), **_ERRORS}},
                "patch": {
                    "summary": "Set a key's own limit overrides (its account's plan still applies)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object", "required": ["limits"], "properties": {"limits": _ref("Limits")}}}},
                    },
                    "responses": {"200": _json(_ref("Key")), **_ERRORS},
                },
            },
            "/keys/{key_id}/revoke": {
                "parameters": [_KEY_PARAM],
                "post": {"summary": "Revoke a key at once", "responses": {"200": _json(_ref("Key")), **_ERRORS}},
            },
            "/keys/{key_id}/rotate": {
                "parameters": [_KEY_PARAM],
                "post": {
                    "summary": "Issue a key's replacement; the old key is revoked at once, or after `grace_seconds`",
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "grace_seconds": {
                                            "type": "integer",
                                            "minimum": 0,
                                            "description": "Keep the old key working this long (its expiry moves to then)",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"201": _json(_ref("IssuedKey"), "Created"), "409": _json(_ref("Error"), "Key revoked"), **_ERRORS},
                },
            },
            "/accounts/{ref}/quota": {
                "parameters": [_REF_PARAM],
                "get": {
                    "summary": "Every limit of the account and of each live key: used, remaining, reset time",
                    "responses": {"200": _json(_ref("QuotaReport")), **_ERRORS},
                },
            },
            "/accounts/{ref}/suspend": {
                "parameters": [_REF_PARAM],
                "post": {"summary": "Suspend an account at once (its calls get 403)", "responses": {"200": _json(_ref("Account")), **_ERRORS}},
            },
            "/accounts/{ref}/unsuspend": {
                "parameters": [_REF_PARAM],
                "post": {"summary": "Lift an account's suspension", "responses": {"200": _json(_ref("Account")), **_ERRORS}},
            },
            "/keys/{key_id}/suspend": {
                "parameters": [_KEY_PARAM],
                "post": {
                    "summary": "Suspend a key at once (its calls get 403)",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}}},
                    "responses": {"200": _json(_ref("Key")), **_ERRORS},
                },
            },
            "/keys/{key_id}/unsuspend": {
                "parameters": [_KEY_PARAM],
                "post": {
                    "summary": "Lift a key's suspension",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}}},
                    "responses": {"200": _json(_ref("Key")), **_ERRORS},
                },
            },
            "/abuse": {
                "get": {
                    "summary": "Addresses cooling off after failed authentications, and recent abuse flags",
                    "responses": {"200": _json({"type": "object", "required": ["blocked_addresses", "flags"]}), **_ERRORS},
                }
            },
            "/routes": {
                "get": {
                    "summary": "Upstream routes: breaker state, moving latency and error rate (no account identity)",
                    "responses": {"200": _json({"type": "object", "properties": {"data": {"type": "array", "items": _ref("Route")}}}), **_ERRORS},
                }
            },
            "/doctor": {
                "get": {
                    "summary": "What `noor doctor` reports, as this daemon sees it: config, data dir, ledger, keyring, secrets, limits",
                    "responses": {"200": _json(_ref("Doctor")), **_ERRORS},
                }
            },
            "/config/reload": {
                "post": {
                    "summary": "Re-read the config file; a bad file is refused and the old config keeps serving",
                    "responses": {
                        "200": _json({"type": "object", "required": ["reloaded", "warnings"]}),
                        "400": _json(_ref("Error"), "The file is invalid; nothing changed"),
                        "401": _ERRORS["401"],
                    },
                }
            },
            "/usage/summary": {
                "get": {
                    "summary": "Usage totals per model from the hourly rollups",
                    "parameters": [
                        {"name": "hours", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 8784}},
                        {"name": "account", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json(_ref("UsageSummary")), **_ERRORS},
                }
            },
        },
    }


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())
