"""The data-rights answers: erasures, privacy requests, retention runs, policy versions, the audit log.

Kept apart from models.py because they follow the privacy promises (30-day requests, 90-day
retention, 14 days' notice) rather than the account and key objects; parsers included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .models import _from_json


@dataclass(frozen=True)
class Erasure:
    id: str
    deleted: bool
    pseudonym: str
    """How the audit log and privacy requests name the account from now on (a salted hash of its email)."""
    request_id: int
    notice: str
    """"queued" (a deletion notice goes out over SMTP, then is forgotten) or "skipped" (no SMTP)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrivacyRequest:
    id: int
    kind: str
    account_id: str
    source: str
    status: str
    awaiting_confirmation: bool
    received_at: str
    due_at: str
    completed_at: str | None
    overdue: bool
    days_left: int | None
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrivacyRequestPage:
    data: list[PrivacyRequest]
    next_before: int | None
    open: int
    overdue: int


@dataclass(frozen=True)
class RetentionReport:
    dry_run: bool
    usage_days: int
    cutoff: str | None
    usage_events: int
    usage_hourly: int
    ran_at: str | None = None
    actor: str | None = None
    batches: int | None = None
    duration_ms: float | None = None
    route_attempts: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetentionStatus:
    usage_days: int
    cutoff: str | None
    interval_seconds: float | None
    last_run: RetentionReport | None
    next_run_at: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    published_at: str
    effective_at: str
    summary: str
    material: bool
    url: str | None
    notices: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyOverview:
    current: PolicyVersion | None
    upcoming: list[PolicyVersion]
    previous: list[PolicyVersion]
    notice_days: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: str
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    account_id: str | None
    details: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditPage:
    data: list[AuditEntry]
    next_before: int | None


def _privacy_request_page(data: dict[str, Any]) -> PrivacyRequestPage:
    return PrivacyRequestPage(
        [_from_json(PrivacyRequest, r) for r in data["data"]], data.get("next_before"), data.get("open", 0),
        data.get("overdue", 0),
    )


def _retention_status(data: dict[str, Any]) -> RetentionStatus:
    last = data.get("last_run")
    return RetentionStatus(
        usage_days=data["usage_days"], cutoff=data.get("cutoff"), interval_seconds=data.get("interval_seconds"),
        last_run=_from_json(RetentionReport, last) if last else None, next_run_at=data.get("next_run_at"),
    )


def _policy_overview(data: dict[str, Any]) -> PolicyOverview:
    return PolicyOverview(
        current=_from_json(PolicyVersion, data["current"]) if data.get("current") else None,
        upcoming=[_from_json(PolicyVersion, v) for v in data.get("upcoming") or []],
        previous=[_from_json(PolicyVersion, v) for v in data.get("previous") or []],
        notice_days=data.get("notice_days", 14),
    )


def _audit_page(data: dict[str, Any]) -> AuditPage:
    return AuditPage([_from_json(AuditEntry, e) for e in data["data"]], data.get("next_before"))
