"""The privacy screen's records in full: a data-rights request, an audit entry, a policy version."""

from __future__ import annotations

import json
from datetime import tzinfo

from rich.text import Text

from noor_daemon.client import AuditEntry, PolicyVersion, PrivacyRequest
from noor_tui.formatting import date, date_time, integer
from noor_tui.widgets.detail import DetailScreen, Section


def request_detail(request: PrivacyRequest, account_label: str, tz: tzinfo | None) -> DetailScreen:
    due = date_time(request.due_at, tz)
    if request.status == "open":
        due += " (OVERDUE)" if request.overdue else f" ({request.days_left} days left)"
    rows = [
        ("Number", str(request.id)), ("Kind", request.kind), ("Account", account_label), ("From", request.source),
        ("Status", request.status + (" (awaiting the holder's confirmation)" if request.awaiting_confirmation else "")),
        ("Received", date_time(request.received_at, tz)), ("Due", due),
        ("Completed", date_time(request.completed_at, tz) if request.completed_at else None), ("Note", request.note),
    ]
    return DetailScreen(f"Request {request.id} · {request.kind}", [Section("Data-rights request", rows)], copy=str(request.id))


def audit_detail(entry: AuditEntry, account_label: str, tz: tzinfo | None) -> DetailScreen:
    rows = [
        ("Entry", str(entry.id)), ("Time", date_time(entry.ts, tz) + f"  ({entry.ts})"), ("Actor", entry.actor),
        ("Action", entry.action), ("Target type", entry.target_type), ("Target", entry.target_id), ("Account", account_label),
    ]
    sections = [Section("Audit entry", rows)]
    if entry.details:
        sections.append(Section("Details", [(name, Text(value if isinstance(value, str) else json.dumps(value)))
                                            for name, value in entry.details.items()]))
    else:
        sections.append(Section("Details", note="None."))
    return DetailScreen(f"Audit entry {entry.id} · {entry.action}", sections, copy=entry.target_id or str(entry.id))


def policy_detail(version: PolicyVersion, state: str, tz: tzinfo | None) -> DetailScreen:
    rows = [
        ("Version", str(version.version)), ("State", state), ("Published", date_time(version.published_at, tz)),
        ("Effective", date(version.effective_at, tz)), ("Material", version.material), ("Notices sent", integer(version.notices)),
        ("Link", version.url), ("Summary", Text(version.summary)),
    ]
    return DetailScreen(f"Privacy policy v{version.version}", [Section("Policy version", rows)], copy=version.url or f"v{version.version}")
