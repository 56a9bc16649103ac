"""The self-service view of a key holder (`noor tui --key`): their account only, through /v1/me.

There is no admin screen here and no way to name another account: every call goes through
`MeClient` with the holder's own key, and the daemon answers for that key's account alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.widgets import Static

from noor_daemon.client import AccountBilling, AdminApiError, KeyInfo, MeInfo, QuotaReport, UsageSeries
from noor_tui.details.keys import key_fields
from noor_tui.formatting import ago, date, integer, money, si
from noor_tui.screens.deleted import AccountDeletedScreen
from noor_tui.screens.base import FAILED, NoorScreen
from noor_tui.screens.usage import UsageScreen
from noor_tui.widgets.detail import DetailScreen
from noor_tui.widgets.modals import ExportModal, TypedConfirmModal
from noor_tui.widgets.quota import QuotaTable, state_text
from noor_tui.widgets.records import Column, Record, RecordTable

KEY_COLUMNS = [
    Column("prefix", "Key", 14), Column("name", "Name", 12, grow=1), Column("state", "State", 12),
    Column("created", "Created", 10, drop=1), Column("used", "Last used", 10), Column("expires", "Expires", 10),
]


@dataclass
class MeData:
    me: MeInfo
    quota: QuotaReport
    billing: AccountBilling | None = None


class MeAccountScreen(NoorScreen):
    MODE = "account"
    POLL_SECONDS = 5.0
    HELP = (
        "Your account (email, plan, status), the key you are using, your limits and budgets with what is left "
        "and when each resets (a budget in the daemon's currency: spent of budget), and your account's keys."
    )

    def compose_body(self) -> ComposeResult:
        yield Static("", id="me-summary", classes="summary")
        with Container(id="me-quota-box", classes="panel") as box:
            box.border_title = "Your limits"
            yield QuotaTable(id="me-quota")
        with Container(id="me-keys-box", classes="panel") as keys:
            keys.border_title = "Your account's keys"
            yield RecordTable(KEY_COLUMNS, id="me-keys", empty="No keys.")

    def __init__(self) -> None:
        super().__init__()
        self.data: MeData | None = None

    async def fetch(self) -> MeData:
        me = self.me_app.me
        try:
            billing = await me.billing()
        except AdminApiError:  # a daemon without the billing routes
            billing = None
        return MeData(await me.me(), await me.quota(), billing)

    def show(self, data: MeData) -> None:
        self.data = data
        account, key = data.me.account, data.me.key
        status = "[b $warning]suspended[/]" if account.status == "suspended" else "[b $success]active[/]"
        summary = (
            f"[b]{account.email}[/] · plan [b]{account.plan}[/] · {status} · "
            f"using key [b]{key.prefix}[/]" + (f" ({key.name})" if key.name else "")
        )
        if data.billing is not None:
            b = data.billing
            charged = "" if b.configured else " [dim](not charged: billing is not configured)[/]"
            summary += (
                f"\nThis period: {si(b.usage.get('tokens'))} tokens, {integer(b.usage.get('requests'))} calls"
                f" · estimate [b]{money(b.estimate.get('amount'), data.quota.currency)}[/]{charged}"
            )
        self.noor.currency = data.quota.currency
        self.query_one("#me-summary", Static).update(summary)
        self.query_one("#me-quota", QuotaTable).show(data.quota, self.now())
        now = self.now()
        records = []
        for k in data.me.api_keys:
            mine = " ← this one" if k.id == key.id else ""
            records.append(Record(
                k.id,
                {"prefix": Text(k.prefix, style="bold" if mine else ""), "name": (k.name or "–") + mine,
                 "state": state_text(k.state), "created": date(k.created_at, self.noor.tz), "used": ago(k.last_used_at, now),
                 "expires": ago(k.expires_at, now) if k.expires_at else "never"},
                item=k, sort={"created": k.created_at or "", "used": k.last_used_at or ""}, copy=k.prefix,
            ))
        self.query_one("#me-keys", RecordTable).show(records)

    @on(RecordTable.Opened, "#me-keys")
    def _open(self, event: RecordTable.Opened) -> None:
        key: KeyInfo = event.record.item
        account = self.data.me.account if self.data else None
        fields = key_fields(key, account.email if account else key.account_id, self.noor.tz, self.now())
        self.app.push_screen(DetailScreen(f"Key {key.masked}", [fields], copy=key.prefix))


class MeUsageScreen(UsageScreen):
    GROUPS = [("model", "Model"), ("key", "Key")]
    PALETTE = [entry for entry in UsageScreen.PALETTE if "account" not in entry[0]]
    HELP = (
        "Your account's tokens, requests or cost over time, by model or by key, with the estimated cost of each "
        "line; a model with no price shows \"unpriced\", never $0."
    )

    async def fetch(self) -> UsageSeries:
        return await self.me_app.me.usage_series(self.range, self.group, limit=8)


class MeDataScreen(NoorScreen):
    MODE = "data"
    POLL_SECONDS = 30.0
    HELP = (
        "Your data rights: export everything NoorAPI holds about your account (JSON or CSV), or delete the "
        "account with its keys and usage. Deletion asks you to type your email, then takes effect at once."
    )
    BINDINGS = [Binding("x", "export", "Export my data"), Binding("d", "delete", "Delete my account")]

    def __init__(self) -> None:
        super().__init__()
        self.info: MeInfo | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="me-data"):
            yield Static("", id="me-data-account", classes="summary")
            with Horizontal(id="me-data-cards"):
                with Container(classes="card", id="card-export") as export:
                    export.border_title = "Export (x)"
                    yield Static(
                        "Everything NoorAPI holds about your account: the account, your keys (prefixes only), "
                        "your usage events (model, tokens, latency, status, time) and audit entries. "
                        "NoorAPI never stores message content, so there is none to export."
                    )
                with Container(classes="card -danger", id="card-delete") as delete:
                    delete.border_title = "Delete (d)"
                    yield Static(
                        "Delete your account, every key of it and all its usage. Your keys stop working at once. "
                        "You will be asked to type your email to confirm. This cannot be undone."
                    )

    async def fetch(self) -> MeInfo:
        return await self.me_app.me.me()

    def show(self, data: MeInfo) -> None:
        self.info = data
        self.query_one("#me-data-account", Static).update(f"Signed in with key [b]{data.key.prefix}[/] of [b]{data.account.email}[/]")

    def action_export(self) -> None:
        self._export()

    @work(group="action", exit_on_error=False)
    async def _export(self) -> None:
        me = self.me_app.me

        async def exporter(path: Path, fmt: str, progress):
            return await me.export(path, format=fmt, progress=progress)

        name = f"noorapi-my-data-{self.now().strftime('%Y%m%d')}.json"
        await self.app.push_screen_wait(
            ExportModal("Export my data", "Your account's data, written to a file only you can read.", self.noor.export_dir / name, exporter)
        )

    def action_delete(self) -> None:
        if self.info is not None:
            self._delete(self.info)

    @work(group="action", exit_on_error=False)
    async def _delete(self, info: MeInfo) -> None:
        email = info.account.email
        if not await self.app.push_screen_wait(
            TypedConfirmModal(
                "Delete my account",
                f"This deletes {email}, all {len(info.api_keys)} of its keys and all its usage. Every key stops working at once.",
                email,
                confirm="Delete my account",
            )
        ):
            return
        me = self.me_app.me
        issued = await self.call(me.request_deletion(), "request the deletion")
        if issued is FAILED:
            return
        token = issued.get("token") if isinstance(issued, dict) else None
        if not token:
            self.notify("The daemon sent a confirmation by email; follow it to finish.", title="Deletion requested")
            return
        done = await self.call(me.confirm_deletion(token), "delete the account")
        if done is not FAILED:
            # The key no longer works: the end of this view, not a banner retrying a refused key forever.
            self.app.push_screen(AccountDeletedScreen(email))
