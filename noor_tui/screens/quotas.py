"""Quotas: every account with its fullest limit; for the selected one, each limit with a bar, what is left and when it resets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.widgets import DataTable

from noor_daemon.client import Account, QuotaReport
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.modals import ConfirmModal
from noor_tui.widgets.quota import QuotaTable, level_style, meter, worst

MAX_ACCOUNTS = 200


@dataclass
class QuotaData:
    accounts: list[Account]
    reports: dict[str, QuotaReport]


class QuotasScreen(NoorScreen):
    MODE = "quotas"
    AUTO_FOCUS = "#quota-accounts"
    POLL_SECONDS = 5.0
    WATCHES = ("accounts", "keys")
    HELP = (
        "Every account with its fullest limit (of the account or any of its keys); for the selected account, "
        "each limit of its plan and each key's own limits with a bar, what is left and when it resets. "
        "Suspended accounts and keys are marked ‖."
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
                yield DataTable(id="quota-accounts", cursor_type="row", zebra_stripes=False)
            with Container(id="quota-detail-box", classes="panel") as right:
                right.border_title = "Limits"
                yield QuotaTable(id="quota-detail")

    def on_mount(self) -> None:
        table = self.query_one("#quota-accounts", DataTable)
        table.add_column("Account", key="email", width=20)
        table.add_column("Fullest", key="worst", width=11)

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
        self.admin_app.directory_loaded(data.accounts)
        table = self.query_one("#quota-accounts", DataTable)
        wanted = [a for a in data.accounts if a.id in data.reports]
        with self.app.batch_update():
            current = {str(k.value) for k in table.rows}
            for key in current - {a.id for a in wanted}:
                table.remove_row(key)
            for account in wanted:
                cells = self._account_cells(account, data.reports[account.id])
                if account.id in current:
                    table.update_cell(account.id, "email", cells[0])
                    table.update_cell(account.id, "worst", cells[1])
                else:
                    table.add_row(*cells, key=account.id)
        if self.selected not in data.reports and wanted:
            self.selected = wanted[0].id
        self._show_detail()
        self.query_one("#quota-accounts-box").border_subtitle = f"{len(data.accounts)}" + (
            f" (first {MAX_ACCOUNTS})" if len(data.accounts) > MAX_ACCOUNTS else ""
        )

    def _account_cells(self, account: Account, report: QuotaReport) -> list:
        share = worst(report)
        label = Text(account.email)
        if account.status == "suspended":
            label = Text("‖ ", style="bold yellow") + label
        style = level_style(share)
        return [label, Text(f"{share * 100:3.0f}% ", style=style) + meter(share, 6, style)]

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

    @on(DataTable.RowHighlighted, "#quota-accounts")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value != self.selected:
            self.selected = str(event.row_key.value)
            self._show_detail()

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
