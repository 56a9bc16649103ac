"""The OpenAPI paths and schemas of the data-rights endpoints (privacy requests, retention, policy
versions, audit log, mail outbox), merged into openapi.py's document."""

from __future__ import annotations


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict:
    text = {"400": "Invalid request", "401": "Missing or wrong admin token", "404": "Not found"}
    return {status: _json(_ref("Error"), text[status]) for status in statuses}


def _query(name: str, schema: dict, description: str | None = None) -> dict:
    param = {"name": name, "in": "query", "schema": schema}
    if description:
        param["description"] = description
    return param


_TIME = {"type": ["string", "null"], "format": "date-time"}
_STAMP = {"type": "string", "format": "date-time"}
"""A time the ledger always has (a NOT NULL column)."""
_PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    _query("before", {"type": "integer", "minimum": 1}, "Page back: entries with a smaller id than this"),
]
_ACCOUNT = _query("account", {"type": "string"}, "An account id or email; the email of an erased account finds its pseudonym")

SCHEMAS = {
    "PrivacyRequest": {
        "type": "object",
        "description": "An access, correction or deletion request, due 30 days after it was received.",
        "required": ["id", "kind", "account_id", "source", "status", "received_at", "due_at", "overdue"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["access", "correction", "deletion"]},
            "account_id": {"type": "string", "description": "acct_…, or the pseudonym (anon_…) once the account is erased"},
            "source": {"type": "string", "enum": ["admin", "self"]},
            "status": {"type": "string", "enum": ["open", "completed", "cancelled", "expired"]},
            "awaiting_confirmation": {"type": "boolean", "description": "A self-service deletion not yet confirmed"},
            "received_at": _STAMP,
            "due_at": _STAMP,
            "completed_at": _TIME,
            "overdue": {"type": "boolean"},
            "days_left": {"type": ["integer", "null"]},
            "note": {"type": ["string", "null"]},
        },
    },
    "RetentionReport": {
        "type": "object",
        "properties": {
            "dry_run": {"type": "boolean"},
            "ran_at": _TIME,
            "actor": {"type": "string"},
            "usage_days": {"type": "integer"},
            "cutoff": _TIME,
            "usage_events": {"type": "integer", "description": "Removed (or, in a dry run, to be removed)"},
            "usage_hourly": {"type": "integer"},
            "route_attempts": {"type": "integer", "description": "Failed upstream attempts removed"},
            "batches": {"type": "integer"},
            "duration_ms": {"type": "number"},
            "expired_confirmations": {"type": "integer"},
        },
    },
    "PolicyVersion": {
        "type": "object",
        "required": ["version", "published_at", "effective_at", "summary", "material", "notices"],
        "properties": {
            "version": {"type": "integer"},
            "published_at": _STAMP,
            "effective_at": _STAMP,
            "summary": {"type": "string"},
            "material": {"type": "boolean"},
            "url": {"type": ["string", "null"]},
            "notices": {"type": "integer", "description": "Notice mails queued, one per account"},
        },
    },
    "AuditEntry": {
        "type": "object",
        "description": "Who did what, when. No content, never an email.",
        "properties": {
            "id": {"type": "integer"},
            "ts": _STAMP,
            "actor": {"type": "string", "description": "admin, self, system or signal"},
            "action": {"type": "string", "description": "account.created, key.revoked, privacy.exported, retention.ran…"},
            "target_type": {"type": ["string", "null"]},
            "target_id": {"type": ["string", "null"]},
            "account_id": {"type": ["string", "null"]},
            "details": {"type": ["object", "null"]},
        },
    },
    "Erasure": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "deleted": {"type": "boolean"},
            "pseudonym": {"type": "string", "description": "anon_…: how the audit log and privacy requests name it now"},
            "request_id": {"type": "integer"},
            "notice": {
                "type": "string",
                "enum": ["queued", "skipped"],
                "description": "queued: a 'deletion completed' mail goes out over SMTP, then is forgotten; skipped: no SMTP",
            },
        },
    },
}

PATHS = {
    "/privacy/requests": {
        "get": {
            "summary": "Data-rights requests, newest first, with due dates and overdue flags",
            "parameters": [
                _query("status", {"type": "string", "enum": ["open", "completed", "cancelled", "all"]}),
                _query("kind", {"type": "string", "enum": ["access", "correction", "deletion"]}),
                _query("overdue", {"type": "boolean"}),
                _ACCOUNT,
                *_PAGE,
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "data": {"type": "array", "items": _ref("PrivacyRequest")},
                            "next_before": {"type": ["integer", "null"]},
                            "open": {"type": "integer"},
                            "overdue": {"type": "integer"},
                        },
                    }
                ),
                **_errors("400", "401"),
            },
        },
        "post": {
            "summary": "Record a request received another way (mail, in person): open, due in 30 days",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["kind", "account"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["access", "correction", "deletion"]},
                        "account": {"type": "string"},
                        "note": {"type": "string", "maxLength": 500},
                    },
                }
            ),
            "responses": {"201": _json(_ref("PrivacyRequest"), "Recorded"), **_errors("400", "401", "404")},
        },
    },
    "/privacy/requests/{request_id}": {
        "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "get": {"summary": "One request", "responses": {"200": _json(_ref("PrivacyRequest")), **_errors("400", "401", "404")}},
    },
    "/privacy/requests/{request_id}/complete": {
        "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "post": {
            "summary": "Mark a request answered",
            "requestBody": _body({"type": "object", "properties": {"note": {"type": "string"}}}, required=False),
            "responses": {"200": _json(_ref("PrivacyRequest")), **_errors("400", "401", "404")},
        },
    },
    "/privacy/retention": {
        "get": {
            "summary": "The retention limit, schedule and last run",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "usage_days": {"type": "integer"},
                            "cutoff": _TIME,
                            "interval_seconds": {"type": "number"},
                            "batch_size": {"type": "integer"},
                            "last_run": {"oneOf": [_ref("RetentionReport"), {"type": "null"}]},
                            "next_run_at": _TIME,
                        },
                    }
                ),
                **_errors("401"),
            },
        }
    },
    "/privacy/retention/run": {
        "post": {
            "summary": "Run retention now, or with dry_run count what would go",
            "requestBody": _body({"type": "object", "properties": {"dry_run": {"type": "boolean"}}}, required=False),
            "responses": {"200": _json(_ref("RetentionReport")), **_errors("400", "401")},
        }
    },
    "/privacy/policies": {
        "get": {
            "summary": "Privacy policy versions: the current one, the upcoming ones, the previous ones",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "current": {"oneOf": [_ref("PolicyVersion"), {"type": "null"}]},
                            "upcoming": {"type": "array", "items": _ref("PolicyVersion")},
                            "previous": {"type": "array", "items": _ref("PolicyVersion")},
                            "notice_days": {"type": "integer"},
                        },
                    }
                ),
                **_errors("401"),
            },
        },
        "post": {
            "summary": "Publish a version and mail a notice to every account; a material change needs 14 days' notice",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["effective", "summary"],
                    "properties": {
                        "effective": {"type": "string", "description": "YYYY-MM-DD (midnight UTC) or an ISO 8601 time with offset"},
                        "summary": {"type": "string", "maxLength": 2000},
                        "material": {"type": "boolean", "default": True},
                        "url": {"type": "string", "format": "uri"},
                        "notify": {"type": "boolean", "default": True, "description": "Minor changes only"},
                    },
                }
            ),
            "responses": {
                "201": _json(_ref("PolicyVersion"), "Published"),
                "400": _json(_ref("Error"), "Invalid, or a material change less than 14 days ahead"),
                **_errors("401"),
            },
        },
    },
    "/audit": {
        "get": {
            "summary": "The audit log, newest first",
            "parameters": [
                _ACCOUNT,
                _query("action", {"type": "string"}, "Exact, or with * (key.*)"),
                *_PAGE,
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "data": {"type": "array", "items": _ref("AuditEntry")},
                            "next_before": {"type": ["integer", "null"]},
                        },
                    }
                ),
                **_errors("400", "401"),
            },
        }
    },
    "/mail/outbox": {
        "get": {
            "summary": "Transactional mail: counts by state and the latest messages (kinds and times, no addresses)",
            "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
            "responses": {"200": _json({"type": "object"}), **_errors("400", "401")},
        }
    },
}
