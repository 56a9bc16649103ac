"""The OpenAPI paths and schemas of the billing endpoints (/billing…), merged into openapi.py's document."""

from __future__ import annotations


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TEXT = {
    "400": "Invalid request",
    "401": "Missing or wrong admin token",
    "404": "No such account",
    "409": "Billing is not configured (code billing_not_configured), or the account already has a subscription",
    "502": "Stripe could not be reached (code stripe_unavailable); try again",
}


def _errors(*statuses: str) -> dict:
    return {status: _json(_ref("Error"), _TEXT[status]) for status in statuses}


_TIME = {"type": ["string", "null"], "format": "date-time"}
_REF_PARAM = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Account id or email"}
_OBJECT_OR_NULL = {"type": ["object", "null"]}

SCHEMAS = {
    "BillingLink": {
        "type": "object",
        "description": "A Stripe-hosted page: Checkout or the Customer Portal. Stripe collects the card, never NoorAPI.",
        "required": ["id", "url"],
        "properties": {
            "id": {"type": "string", "description": "cs_… or bps_…"},
            "url": {"type": "string", "format": "uri"},
            "expires_at": {"type": ["integer", "null"], "description": "Unix seconds (Checkout only)"},
        },
    },
    "AccountBilling": {
        "type": "object",
        "description": "One account's billing. Without [billing] in the config: `configured` false and local data only.",
        "required": ["configured", "account", "free_plan", "paid_plans", "period", "usage", "estimate", "links", "invoices"],
        "properties": {
            "configured": {"type": "boolean"},
            "message": {"type": "string"},
            "account": {
                "type": "object",
                "required": ["id", "email", "plan", "status"],
                "properties": {
                    "id": {"type": "string"}, "email": {"type": "string"}, "plan": {"type": "string"}, "status": {"type": "string"},
                },
            },
            "free_plan": {"type": "string"},
            "paid_plans": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Plan to Stripe price id"},
            "customer_id": {"type": ["string", "null"]},
            "subscription": {
                "type": ["object", "null"],
                "properties": {
                    "id": {"type": "string"}, "status": {"type": ["string", "null"]}, "plan": {"type": ["string", "null"]},
                    "current_period_start": _TIME, "current_period_end": _TIME,
                },
            },
            "grace": {
                "type": ["object", "null"],
                "properties": {"payment_failed_at": _TIME, "grace_until": _TIME, "downgraded_at": _TIME},
            },
            "period": {
                "type": "object",
                "required": ["start", "end", "source"],
                "properties": {"start": _TIME, "end": _TIME, "source": {"type": "string", "enum": ["subscription", "calendar_month"]}},
            },
            "usage": {
                "type": "object",
                "required": ["requests", "errors", "prompt_tokens", "completion_tokens", "tokens", "models"],
                "properties": {
                    "requests": {"type": "integer"}, "errors": {"type": "integer"}, "prompt_tokens": {"type": "integer"},
                    "completion_tokens": {"type": "integer"}, "tokens": {"type": "integer"},
                    "models": {"type": "array", "items": {"type": "object"}},
                },
            },
            "estimate": {
                "type": "object",
                "required": ["amount", "priced", "unpriced_models"],
                "properties": {
                    "amount": {"type": "number"}, "priced": {"type": "boolean"},
                    "unpriced_models": {"type": "array", "items": {"type": "string"}}, "basis": {"type": "string"},
                },
            },
            "links": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Paths to POST for a Checkout or portal URL"},
            "meter": _OBJECT_OR_NULL,
            "invoices": {"type": ["array", "null"], "items": {"type": "object"}},
            "invoices_error": {"type": ["string", "null"]},
        },
    },
}

PATHS = {
    "/billing": {
        "get": {
            "summary": "Billing state: whether Stripe is configured; customers, subscriptions, grace periods, meter outbox, webhooks",
            "responses": {
                "200": _json({"type": "object", "required": ["configured"], "properties": {"configured": {"type": "boolean"}}}),
                **_errors("401"),
            },
        }
    },
    "/billing/accounts/{ref}": {
        "parameters": [_REF_PARAM],
        "get": {
            "summary": "An account's billing: plan, subscription, period usage and estimated charge, meter, last invoices, links",
            "responses": {"200": _json(_ref("AccountBilling")), **_errors("401", "404")},
        },
    },
    "/billing/accounts/{ref}/checkout": {
        "parameters": [_REF_PARAM],
        "post": {
            "summary": "A Stripe Checkout URL subscribing the account to a paid plan",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "required": ["plan"], "properties": {"plan": {"type": "string"}}}
                    }
                },
            },
            "responses": {"201": _json(_ref("BillingLink"), "Created"), **_errors("400", "401", "404", "409", "502")},
        },
    },
    "/billing/accounts/{ref}/portal": {
        "parameters": [_REF_PARAM],
        "post": {
            "summary": "A Stripe Customer Portal URL for the account (plan, card, cancellation, invoices)",
            "responses": {"201": _json(_ref("BillingLink"), "Created"), **_errors("401", "404", "409", "502")},
        },
    },
}
