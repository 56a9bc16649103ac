"""Quotas: every account with its fullest limit or budget; for the selected one, each limit and budget with a bar,
what is left and when it resets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal

from noor_daemon.client import Account, QuotaReport
from noor_tui.details.accounts import account_detail
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.modals import ConfirmModal
from noor_tui.widgets.quota import QuotaTable, level_style, meter, worst
from noor_tui.widgets.records import Column, Record, RecordTable

MAX_ACCOUNTS = 200
COLUMNS = [Column("email", "Account", 16, grow=1), Column("worst", "Fullest", 11)]


@dataclass
class QuotaData:
    accounts: list[Account]
    reports: dict[str, QuotaReport]


class QuotasScreen(NoorScreen):
    MODE = "quotas"
    AUTO_FOCUS = "#quota-accounts DataTable"
    POLL_SECONDS = 5.0
    WATCHES = ("accounts", "keys")
    HELP = (
        "Every account with its fullest limit or budget (of the account or any of its keys); for the selected "
        "account, each limit and budget of its plan (or its own) and each key's own, with a bar, what is left and "
        "when it resets. Budgets are money (spent of budget, in the daemon's currency). Suspended accounts and "
        "keys are marked ‖."
    )
    BINDINGS = [Binding("s", "suspend", "Suspend/resume account")]

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None
        self.data: QuotaData | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="quota-body"):
            with Container(id="quota-accounts-box", classes="panel") as left:
                left.border_title = "Accounts"
                yield RecordTable(COLUMNS, id="quota-accounts", zebra=False, empty="No accounts.")
            with Container(id="quota-detail-box", classes="panel") as right:
                right.border_title = "Limits"
                yield QuotaTable(id="quota-detail")

    async def fetch(self) -> QuotaData:
        admin = self.admin_app.admin
        accounts = await admin.list_accounts()
        gate = asyncio.Semaphore(8)

        async def one(account: Account) -> tuple[str, QuotaReport]:
            async with gate:
                return account.id, await admin.account_quota(account.id)

        reports = dict(await asyncio.gather(*(one(a) for a in accounts[:MAX_ACCOUNTS])))
        return QuotaData(accounts, reports)

    def show(self, data: QuotaData) -> None:
        self.data = data
        if data.reports:
            self.noor.currency = next(iter(data.reports.values())).currency
        self.admin_app.directory_loaded(data.accounts)
        wanted = [a for a in data.accounts if a.id in data.reports]
        records = []
        for account in wanted:
            report = data.reports[account.id]
            share = worst(report)
            label = Text(account.email)
            if account.status == "suspended":
                label = Text("‖ ", style="bold yellow") + label
            style = level_style(share)
            records.append(Record(
                account.id,
                {"email": label, "worst": Text(f"{share * 100:3.0f}% ", style=style) + meter(share, 6, style)},
                item=account, sort={"worst": share}, copy=account.id,
            ))
        self.query_one("#quota-accounts", RecordTable).show(records)
        if self.selected not in data.reports and wanted:
            self.selected = wanted[0].id
        self._show_detail()
        self.query_one("#quota-accounts-box").border_title = f"Accounts · {len(data.accounts)}" + (
            f" (first {MAX_ACCOUNTS})" if len(data.accounts) > MAX_ACCOUNTS else ""
        )

    def _show_detail(self) -> None:
        detail = self.query_one("#quota-detail", QuotaTable)
        box = self.query_one("#quota-detail-box")
        if self.data is None or self.selected not in self.data.reports:
            detail.clear()
            box.border_title = "Limits"
            return
        report = self.data.reports[self.selected]
        detail.show(report, self.now())
        box.border_title = f"Limits · {report.account.email} · plan {report.account.plan}"
        box.border_subtitle = "‖ suspended: calls are refused" if report.account.status == "suspended" else ""

    @on(RecordTable.Highlighted, "#quota-accounts")
    def _highlighted(self, event: RecordTable.Highlighted) -> None:
        if event.record is not None and event.record.key != self.selected:
            self.selected = event.record.key
            self._show_detail()

    @on(RecordTable.Opened, "#quota-accounts")
    def _open(self, event: RecordTable.Opened) -> None:
        account: Account = event.record.item
        keys = [k for k in self.admin_app.keys.values() if k.account_id == account.id]
        self.app.push_screen(account_detail(self.admin_app.admin, account, keys, self.noor.tz, self.now()))

    def action_suspend(self) -> None:
        if self.data is None or self.selected is None:
            return
        self._toggle_suspension(self.data.reports[self.selected].account)

    @work(group="action", exit_on_error=False)
    async def _toggle_suspension(self, account: Account) -> None:
        admin = self.admin_app.admin
        if account.status == "suspended":
            if await self.app.push_screen_wait(ConfirmModal("Resume account", f"Let {account.email}'s keys make calls again?", confirm="Resume")):
                if await self.call(admin.unsuspend_account(account.id), "resume the account"):
                    self.notify(f"{account.email} is active again.")
                    self.changed("accounts")
        elif await self.app.push_screen_wait(
            ConfirmModal("Suspend account", f"Refuse every call from {account.email}'s keys until it is resumed?", confirm="Suspend", danger=True)
        ):
            if await self.call(admin.suspend_account(account.id), "suspend the account"):
                self.notify(f"{account.email} is suspended.")
                self.changed("accounts")
