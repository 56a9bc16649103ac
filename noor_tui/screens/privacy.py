"""Privacy: data-rights requests with due dates (overdue in red), retention, the audit log, policy versions; export and delete."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static, TabbedContent, TabPane

from noor_daemon.client import Account, AuditEntry, PolicyOverview, PrivacyRequest, PrivacyRequestPage, RetentionStatus
from noor_tui.details.privacy import audit_detail, policy_detail, request_detail
from noor_tui.formatting import ago, date, date_time, integer, span
from noor_tui.screens.accounts import AccountActions
from noor_tui.screens.base import FAILED, NoorScreen
from noor_tui.widgets.modals import ChoiceModal, ConfirmModal, PromptModal
from noor_tui.widgets.records import Column, Record, RecordTable

TABS = ("requests", "audit", "policies")
REQUEST_COLUMNS = [
    Column("id", "#", 3, right=True), Column("kind", "Kind", 10), Column("account", "Account", 16, grow=2),
    Column("source", "From", 5, drop=2), Column("status", "Status", 9), Column("received", "Received", 10, drop=1),
    Column("due", "Due", 18), Column("note", "Note", 10, grow=1, drop=3),
]
AUDIT_COLUMNS = [
    Column("ts", "Time", 16), Column("actor", "Actor", 6), Column("action", "Action", 22, grow=1),
    Column("target", "Target", 20, grow=1, drop=2), Column("account", "Account", 14, grow=1),
    Column("details", "Details", 16, grow=2, drop=1),
]
POLICY_COLUMNS = [
    Column("version", "Ver", 3, right=True), Column("state", "State", 8), Column("published", "Published", 10, drop=2),
    Column("effective", "Effective", 10), Column("material", "Material", 8, drop=3),
    Column("notices", "Notices", 7, right=True, drop=1), Column("summary", "Summary", 20, grow=1),
]


@dataclass
class PrivacyData:
    requests: PrivacyRequestPage
    retention: RetentionStatus
    policies: PolicyOverview
    audit: list[AuditEntry]
    accounts: list[Account]


def _details(details: dict | None) -> str:
    if not details:
        return ""
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in details.items())


class PrivacyScreen(AccountActions, NoorScreen):
    MODE = "privacy"
    AUTO_FOCUS = "#privacy-requests DataTable"
    POLL_SECONDS = 15.0
    WATCHES = ("privacy", "accounts")
    HELP = (
        "Data-rights requests (access, correction, deletion) with their 30-day due dates, overdue in red; "
        "the retention job (usage older than the configured days is deleted by itself); the audit log "
        "(no content, no emails); and the privacy policy versions with their notice periods. Enter shows a "
        "request, an audit entry or a policy version in full."
    )
    BINDINGS = [
        Binding("x", "export", "Export account"),
        Binding("d", "delete", "Delete account"),
        Binding("c", "complete", "Complete request"),
        Binding("R", "run_retention", "Run retention"),
        Binding("t", "next_tab", "Next tab"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: PrivacyData | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="retention", classes="summary")
        with TabbedContent(id="privacy-tabs", initial="requests"):
            with TabPane("Requests", id="requests"):
                yield RecordTable(REQUEST_COLUMNS, id="privacy-requests", empty="No data-rights requests yet.")
            with TabPane("Audit log", id="audit"):
                yield RecordTable(AUDIT_COLUMNS, id="audit-log", empty="The audit log is empty.")
            with TabPane("Policies", id="policies"):
                yield RecordTable(POLICY_COLUMNS, id="policy-versions", empty="No policy versions published yet.")

    async def fetch(self) -> PrivacyData:
        admin = self.admin_app.admin
        return PrivacyData(
            requests=await admin.privacy_requests(status="all", limit=200),
            retention=await admin.retention_status(),
            policies=await admin.policies(),
            audit=(await admin.audit(limit=200)).data,
            accounts=await admin.list_accounts(),
        )

    def show(self, data: PrivacyData) -> None:
        self.data = data
        self.admin_app.directory_loaded(data.accounts)
        self._retention(data.retention, data.requests)
        tz = self.noor.tz
        label = self.admin_app.account_label
        requests = []
        for r in sorted(data.requests.data, key=lambda r: (r.status != "open", r.due_at)):
            if r.status == "open" and r.overdue:
                due = Text(f"{date(r.due_at, tz)} overdue", style="bold red")
            elif r.status == "open":
                due = Text(f"{date(r.due_at, tz)} ({r.days_left}d)", style="yellow" if (r.days_left or 0) < 7 else "")
            else:
                due = Text(date(r.due_at, tz), style="dim")
            status = r.status + (" (confirm)" if r.awaiting_confirmation else "")
            style = {"open": "bold", "completed": "green", "cancelled": "dim", "expired": "dim"}.get(r.status, "")
            requests.append(Record(
                str(r.id),
                {"id": str(r.id), "kind": r.kind, "account": label(r.account_id), "source": r.source,
                 "status": Text(status, style=style), "received": date(r.received_at, tz), "due": due, "note": r.note or ""},
                item=r, sort={"id": r.id, "due": r.due_at, "received": r.received_at}, fields={"account_id": r.account_id},
                copy=str(r.id),
            ))
        self.query_one("#privacy-requests", RecordTable).show(requests)
        entries = []
        for entry in data.audit:
            target = f"{entry.target_type or ''} {entry.target_id or ''}".strip()
            entries.append(Record(
                str(entry.id),
                {"ts": Text(date_time(entry.ts, tz), style="dim"), "actor": entry.actor, "action": entry.action,
                 "target": target, "account": label(entry.account_id) if entry.account_id else "–",
                 "details": _details(entry.details)},
                item=entry, sort={"ts": entry.ts}, fields={"id": str(entry.id), "account_id": entry.account_id or ""},
                copy=entry.target_id or str(entry.id),
            ))
        self.query_one("#audit-log", RecordTable).show(entries)
        overview = data.policies
        versions = [("current", overview.current)] if overview.current else []
        versions += [("upcoming", v) for v in overview.upcoming] + [("previous", v) for v in reversed(overview.previous)]
        policies = []
        for state, version in versions:
            if version is None:
                continue
            style = {"current": "bold green", "upcoming": "yellow", "previous": "dim"}[state]
            policies.append(Record(
                f"v{version.version}",
                {"version": str(version.version), "state": Text(state, style=style),
                 "published": date(version.published_at, tz), "effective": date(version.effective_at, tz),
                 "material": "yes" if version.material else "no", "notices": integer(version.notices),
                 "summary": version.summary},
                item=(state, version), sort={"version": version.version, "notices": version.notices},
                copy=version.url or f"v{version.version}",
            ))
        self.query_one("#policy-versions", RecordTable).show(policies)
        tabs = self.query_one("#privacy-tabs", TabbedContent)
        open_count, overdue = data.requests.open, data.requests.overdue
        tabs.get_tab("requests").label = f"Requests · {open_count} open" + (f" · {overdue} overdue" if overdue else "")
        tabs.get_tab("policies").label = f"Policies · v{overview.current.version}" if overview.current else "Policies"

    @on(RecordTable.Opened, "#privacy-requests")
    def _open_request(self, event: RecordTable.Opened) -> None:
        request: PrivacyRequest = event.record.item
        self.app.push_screen(request_detail(request, self._account(request.account_id), self.noor.tz))

    @on(RecordTable.Opened, "#audit-log")
    def _open_entry(self, event: RecordTable.Opened) -> None:
        entry: AuditEntry = event.record.item
        self.app.push_screen(audit_detail(entry, self._account(entry.account_id), self.noor.tz))

    @on(RecordTable.Opened, "#policy-versions")
    def _open_policy(self, event: RecordTable.Opened) -> None:
        state, version = event.record.item
        self.app.push_screen(policy_detail(version, state, self.noor.tz))

    def _account(self, account_id: str | None) -> str:
        if not account_id:
            return "–"
        email = self.admin_app.account_label(account_id)
        return account_id if email == account_id else f"{email} ({account_id})"

    def _retention(self, retention: RetentionStatus, requests: PrivacyRequestPage) -> None:
        now = self.now()
        parts = [f"[b]Retention[/]: usage kept {retention.usage_days} days"]
        last = retention.last_run
        if last is not None and last.ran_at:
            parts.append(
                f"last run {ago(last.ran_at, now)} (removed {integer(last.usage_events)} events, "
                f"{integer(last.usage_hourly)} hourly rows)"
            )
        else:
            parts.append("not run yet")
        if retention.next_run_at:
            parts.append(f"next {ago(retention.next_run_at, now)}")
        elif retention.interval_seconds:
            parts.append(f"every {span(retention.interval_seconds)}")
        overdue = f" · [b $error]{requests.overdue} overdue[/]" if requests.overdue else ""
        self.query_one("#retention", Static).update(" · ".join(parts) + f"   [b]Requests[/]: {requests.open} open{overdue}")

    # -- actions ------------------------------------------------------------------------

    def action_next_tab(self) -> None:
        tabs = self.query_one("#privacy-tabs", TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active in TABS else TABS[0]
        table = {"requests": "#privacy-requests", "audit": "#audit-log", "policies": "#policy-versions"}[tabs.active]
        self.query_one(f"{table} DataTable").focus()

    def selected_account_id(self) -> str | None:
        """The account of the request or audit entry under the cursor on the tab shown (to preset the dialogs)."""
        tabs = self.query_one("#privacy-tabs", TabbedContent)
        table_id = {"requests": "#privacy-requests", "audit": "#audit-log"}.get(tabs.active or "")
        record = self.query_one(table_id, RecordTable).selected if table_id else None
        if record is None:
            return None
        account_id = record.item.account_id
        known = {a.id for a in self.data.accounts} if self.data else set()
        return account_id if account_id in known else None

    async def _pick_account(self, title: str) -> Account | None:
        accounts = self.data.accounts if self.data else []
        if not accounts:
            self.notify("There are no accounts.", severity="warning")
            return None
        chosen = await self.app.push_screen_wait(
            ChoiceModal(
                title, "Account", [(a.email, a.id) for a in sorted(accounts, key=lambda a: a.email)],
                value=self.selected_account_id(), confirm="Next",
            )
        )
        return next((a for a in accounts if a.id == chosen), None)

    def action_export(self) -> None:
        self._export()

    @work(group="action", exit_on_error=False)
    async def _export(self) -> None:
        account = await self._pick_account("Export an account's data")
        if account is not None:
            await self.export_account(account)
            self.poll()

    def action_delete(self) -> None:
        self._delete()

    @work(group="action", exit_on_error=False)
    async def _delete(self) -> None:
        account = await self._pick_account("Delete an account")
        if account is not None:
            await self.delete_account(account)

    def action_complete(self) -> None:
        record = self.query_one("#privacy-requests", RecordTable).selected
        if record is not None:
            request: PrivacyRequest = record.item
            self._complete(request.id, request.status, request.kind)

    @work(group="action", exit_on_error=False)
    async def _complete(self, request_id: int, status: str, kind: str) -> None:
        if status != "open":
            self.notify(f"Request {request_id} is {status}.")
            return
        note = await self.app.push_screen_wait(
            PromptModal(f"Complete request {request_id}", f"How was this {kind} request answered? (a short note, no personal data)", confirm="Complete")
        )
        if note is None:
            return
        if await self.call(self.admin_app.admin.complete_privacy_request(request_id, note or None), "complete the request") is not FAILED:
            self.notify(f"Request {request_id} is completed.")
            self.poll()

    def action_run_retention(self) -> None:
        self._run_retention()

    @work(group="action", exit_on_error=False)
    async def _run_retention(self) -> None:
        admin = self.admin_app.admin
        preview = await self.call(admin.run_retention(dry_run=True), "preview the retention run")
        if preview is FAILED:
            return
        if not await self.app.push_screen_wait(
            ConfirmModal(
                "Run retention now",
                f"Delete usage older than {preview.usage_days} days now: {integer(preview.usage_events)} events and "
                f"{integer(preview.usage_hourly)} hourly rows.",
                confirm="Delete old usage",
                danger=True,
            )
        ):
            return
        report = await self.call(admin.run_retention(), "run retention")
        if report is not FAILED:
            self.notify(f"Removed {integer(report.usage_events)} events and {integer(report.usage_hourly)} hourly rows.", title="Retention")
            self.poll()
