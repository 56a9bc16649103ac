"""Privacy: data-rights requests with due dates (overdue in red), retention, the audit log, policy versions; export and delete."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from noor_daemon.client import Account, AuditEntry, PolicyOverview, PrivacyRequestPage, RetentionStatus
from noor_tui.formatting import ago, date, date_time, integer, span, truncate
from noor_tui.screens.accounts import AccountActions
from noor_tui.screens.base import FAILED, NoorScreen
from noor_tui.widgets.cells import Column, lay_out, sync_rows, width_of
from noor_tui.widgets.modals import ChoiceModal, ConfirmModal, PromptModal

TABS = ("requests", "audit", "policies")
REQUEST_COLUMNS = [
    Column("id", "#", 4), Column("kind", "Kind", 10), Column("account", "Account", (18, 26)),
    Column("source", "From", 6, wide_only=True), Column("status", "Status", 12),
    Column("received", "Received", 10, wide_only=True), Column("due", "Due", 19), Column("note", "Note", 24, wide_only=True),
]
AUDIT_COLUMNS = [
    Column("ts", "Time", 16), Column("actor", "Actor", 7), Column("action", "Action", (18, 22)),
    Column("target", "Target", 24, wide_only=True), Column("account", "Account", (17, 24)),
    Column("details", "Details", 34, wide_only=True),
]
POLICY_COLUMNS = [
    Column("version", "Ver", 4), Column("state", "State", 9), Column("published", "Published", 10, wide_only=True),
    Column("effective", "Effective", 10), Column("material", "Material", 8, wide_only=True),
    Column("notices", "Notices", 7, wide_only=True), Column("summary", "Summary", (36, 60)),
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
    AUTO_FOCUS = "#privacy-requests"
    POLL_SECONDS = 15.0
    WATCHES = ("privacy", "accounts")
    HELP = (
        "Data-rights requests (access, correction, deletion) with their 30-day due dates, overdue in red; "
        "the retention job (usage older than the configured days is deleted by itself); the audit log "
        "(no content, no emails); and the privacy policy versions with their notice periods."
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
                yield DataTable(id="privacy-requests", cursor_type="row", zebra_stripes=True)
            with TabPane("Audit log", id="audit"):
                yield DataTable(id="audit-log", cursor_type="row", zebra_stripes=True)
            with TabPane("Policies", id="policies"):
                yield DataTable(id="policy-versions", cursor_type="row", zebra_stripes=True)

    def on_resize(self) -> None:
        if self.data is not None:
            self.show(self.data)

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
        label = self.admin_app.account_label
        width = self.app.size.width
        with self.app.batch_update():
            table = self.query_one("#privacy-requests", DataTable)
            columns = lay_out(table, REQUEST_COLUMNS, width)
            rows: list = []
            ordered = sorted(data.requests.data, key=lambda r: (r.status != "open", r.due_at))
            for r in ordered:
                if r.status == "open" and r.overdue:
                    due = Text(f"{date(r.due_at, self.noor.tz)} overdue", style="bold red")
                elif r.status == "open":
                    style = "yellow" if (r.days_left or 0) < 7 else ""
                    due = Text(f"{date(r.due_at, self.noor.tz)} ({r.days_left}d)", style=style)
                else:
                    due = Text(date(r.due_at, self.noor.tz), style="dim")
                status = r.status + (" (confirm)" if r.awaiting_confirmation else "")
                status_style = {"open": "bold", "completed": "green", "cancelled": "dim", "expired": "dim"}.get(r.status, "")
                cells = {
                    "id": str(r.id), "kind": r.kind, "account": truncate(label(r.account_id), width_of(table, "account")),
                    "source": r.source, "status": Text(status, style=status_style),
                    "received": date(r.received_at, self.noor.tz), "due": due, "note": truncate(r.note or "", 24),
                }
                rows.append((str(r.id), cells))
            if not ordered:
                rows.append(("none", {c: Text("None yet.", style="dim") if c == "account" else "" for c in columns}))
            sync_rows(table, columns, rows)
            audit = self.query_one("#audit-log", DataTable)
            columns = lay_out(audit, AUDIT_COLUMNS, width)
            rows = []
            for entry in data.audit:
                target = f"{entry.target_type or ''} {entry.target_id or ''}".strip()
                cells = {
                    "ts": Text(date_time(entry.ts, self.noor.tz), style="dim"), "actor": entry.actor,
                    "action": truncate(entry.action, width_of(audit, "action")), "target": truncate(target, 24),
                    "account": truncate(label(entry.account_id) if entry.account_id else "–", width_of(audit, "account")),
                    "details": truncate(_details(entry.details), 34),
                }
                rows.append((str(entry.id), cells))
            sync_rows(audit, columns, rows)
            policies = self.query_one("#policy-versions", DataTable)
            columns = lay_out(policies, POLICY_COLUMNS, width)
            overview = data.policies
            versions = [("current", overview.current)] if overview.current else []
            versions += [("upcoming", v) for v in overview.upcoming] + [("previous", v) for v in reversed(overview.previous)]
            rows = []
            for state, version in versions:
                if version is None:
                    continue
                style = {"current": "bold green", "upcoming": "yellow", "previous": "dim"}[state]
                cells = {
                    "version": str(version.version), "state": Text(state, style=style),
                    "published": date(version.published_at, self.noor.tz), "effective": date(version.effective_at, self.noor.tz),
                    "material": "yes" if version.material else "no", "notices": integer(version.notices),
                    "summary": truncate(version.summary, width_of(policies, "summary")),
                }
                rows.append((f"v{version.version}", cells))
            if not rows:
                empty = Text("No policy versions published yet.", style="dim")
                rows.append(("none", {c: empty if c == "summary" else "" for c in columns}))
            sync_rows(policies, columns, rows)
        tabs = self.query_one("#privacy-tabs", TabbedContent)
        open_count, overdue = data.requests.open, data.requests.overdue
        tabs.get_tab("requests").label = f"Requests · {open_count} open" + (f" · {overdue} overdue" if overdue else "")
        tabs.get_tab("policies").label = f"Policies · v{overview.current.version}" if overview.current else "Policies"

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

    async def _pick_account(self, title: str) -> Account | None:
        accounts = self.data.accounts if self.data else []
        if not accounts:
            self.notify("There are no accounts.", severity="warning")
            return None
        chosen = await self.app.push_screen_wait(
            ChoiceModal(title, "Account", [(a.email, a.id) for a in sorted(accounts, key=lambda a: a.email)], confirm="Next")
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
        table = self.query_one("#privacy-requests", DataTable)
        if self.data is None or table.row_count == 0:
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        request = next((r for r in self.data.requests.data if str(r.id) == row_key.value), None)
        if request is not None:
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
