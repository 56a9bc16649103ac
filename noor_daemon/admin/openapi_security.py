"""The OpenAPI paths of the security endpoints (admin token rotation, revocation by key prefix),
merged into openapi.py's document."""

from __future__ import annotations

_ERROR = {"$ref": "#/components/schemas/Error"}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict:
    text = {
        "400": "Invalid request",
        "401": "Missing or wrong admin token",
        "404": "Not found",
        "409": "Conflict",
    }
    return {status: _json(_ERROR, text[status]) for status in statuses}


PATHS = {
    "/admin-token/rotate": {
        "post": {
            "summary": "Replace the admin token: the new one is in force at once and shown this once",
            "description": (
                "The daemon stores only the new token's SHA-256 (0600, in its data dir); the token used for this "
                "request stops working immediately. Refused (409) while NOOR_ADMIN_TOKEN sets the token."
            ),
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["token", "rotated_at"],
                        "properties": {
                            "token": {"type": "string", "description": "The new admin token; not retrievable again"},
                            "rotated_at": _TIME,
                            "stored": {"type": "string", "description": "Where the daemon keeps the token's hash"},
                        },
                    },
                    "Rotated",
                ),
                **_errors("401", "409"),
            },
        }
    },
    "/keys/revoke-by-prefix": {
        "post": {
            "summary": "Revoke a key by its display prefix alone (a leaked key whose id is not at hand)",
            "description": (
                "`prefix` is a key's display prefix (sk-noor- and 6 characters, as listed) or the whole key. "
                "Several live keys with that prefix: 409, nothing revoked."
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["prefix"],
                            "properties": {"prefix": {"type": "string", "minLength": 14, "examples": ["sk-noor-AbC123"]}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "allOf": [
                            {"$ref": "#/components/schemas/Key"},
                            {
                                "type": "object",
                                "required": ["already_revoked"],
                                "properties": {"already_revoked": {"type": "boolean"}},
                            },
                        ]
                    },
                    "Revoked (or already revoked)",
                ),
                **_errors("400", "401", "404", "409"),
            },
        }
    },
}
