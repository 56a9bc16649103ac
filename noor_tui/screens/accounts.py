"""Accounts: list, create, change email, change plan, suspend; export and delete (with the email typed to confirm)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container

from noor_daemon.client import Account, KeyInfo
from noor_tui.details.accounts import account_detail
from noor_tui.formatting import date
from noor_tui.screens.base import FAILED, NoorScreen
from noor_tui.widgets.modals import (
    ChoiceModal,
    ConfirmModal,
    ExportModal,
    NewAccountModal,
    PromptModal,
    TypedConfirmModal,
    email_problem,
)
from noor_tui.widgets.quota import state_text
from noor_tui.widgets.records import Column, Record, RecordTable

COLUMNS = [
    Column("email", "Email", 24, grow=2),
    Column("plan", "Plan", 8, grow=1),
    Column("status", "Status", 12),
    Column("keys", "Keys", 5, right=True),
    Column("created", "Created", 10),
    Column("id", "Id", 22, drop=1),
]


@dataclass
class AccountData:
    accounts: list[Account]
    keys: list[KeyInfo]


def export_path(directory: Path, account: Account, fmt: str, today: str) -> Path:
    return directory / f"noorapi-export-{account.id}-{today}.{fmt}"


class AccountActions:
    """Export and delete, shared by the accounts and privacy screens."""

    async def export_account(self: NoorScreen, account: Account) -> None:  # type: ignore[misc]
        admin = self.admin_app.admin

        async def exporter(path: Path, fmt: str, progress):
            return await admin.export_account(account.id, path, format=fmt, progress=progress)

        today = self.now().strftime("%Y%m%d")
        await self.app.push_screen_wait(
            ExportModal(
                f"Export {account.email}",
                "Everything NoorAPI holds about this account: the account, its keys (prefixes, never secrets), "
                "its usage events and its audit entries. Never message content: NoorAPI has none.",
                export_path(self.noor.export_dir, account, "json", today),
                exporter,
            )
        )
        self.noor.broadcast_changed("privacy")

    async def delete_account(self: NoorScreen, account: Account) -> None:  # type: ignore[misc]
        confirmed = await self.app.push_screen_wait(
            TypedConfirmModal(
                "Delete account",
                f"Delete {account.email} for good: the account, all its keys (refused at once), its usage rows "
                "and per-account aggregates. The audit log keeps only a pseudonym. This cannot be undone.",
                account.email,
                confirm="Delete account",
            )
        )
        if not confirmed:
            return
        deleted = await self.call(self.admin_app.admin.delete_account(account.id), "delete the account")
        if deleted is not FAILED:
            self.notify(f"{account.email} and everything about it is deleted.", title="Account deleted", markup=False)
            self.changed("accounts")
            self.noor.broadcast_changed("privacy")


class AccountsScreen(AccountActions, NoorScreen):
    MODE = "accounts"
    AUTO_FOCUS = "#accounts DataTable"
    POLL_SECONDS = 10.0
    WATCHES = ("accounts", "keys")
    HELP = (
        "Every account: its email (the only personal data NoorAPI holds), plan, status and live keys. "
        "Create, correct the email, change the plan, suspend, export its data, or delete it. Enter shows its "
        "plan, keys, limits, budget, billing and data-rights requests."
    )
    BINDINGS = [
        Binding("n", "new_account", "New"),
        Binding("e", "change_email", "Email"),
        Binding("p", "change_plan", "Plan"),
        Binding("s", "suspend", "Suspend/resume"),
        Binding("x", "export", "Export"),
        Binding("d", "delete", "Delete"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: AccountData | None = None

    def compose_body(self) -> ComposeResult:
        with Container(id="accounts-box", classes="panel") as box:
            box.border_title = "Accounts"
            yield RecordTable(COLUMNS, id="accounts", empty="No accounts yet: press n to create one.")

    @property
    def table(self) -> RecordTable:
        return self.query_one("#accounts", RecordTable)

    async def fetch(self) -> AccountData:
        admin = self.admin_app.admin
        return AccountData(await admin.list_accounts(), await admin.list_keys())

    def show(self, data: AccountData) -> None:
        self.data = data
        self.admin_app.directory_loaded(data.accounts, data.keys)
        live: dict[str, int] = {}
        for key in data.keys:
            if key.state == "active":
                live[key.account_id] = live.get(key.account_id, 0) + 1
        records = []
        for account in sorted(data.accounts, key=lambda a: a.email.lower()):
            records.append(Record(
                account.id,
                {
                    "email": Text(account.email, style="bold" if account.status == "active" else "yellow"),
                    "plan": account.plan,
                    "status": state_text(account.status),
                    "keys": str(live.get(account.id, 0)),
                    "created": Text(date(account.created_at, self.noor.tz), style="dim"),
                    "id": Text(account.id, style="dim"),
                },
                item=account,
                sort={"keys": live.get(account.id, 0), "created": account.created_at or ""},
                copy=account.id,
            ))
        self.table.show(records)
        suspended = sum(1 for a in data.accounts if a.status == "suspended")
        self.query_one("#accounts-box").border_title = f"Accounts · {len(data.accounts)}" + (
            f" · {suspended} suspended" if suspended else ""
        )

    def selected_account(self) -> Account | None:
        record = self.table.selected
        return record.item if record is not None else None

    @on(RecordTable.Opened, "#accounts")
    def _open(self, event: RecordTable.Opened) -> None:
        account: Account = event.record.item
        keys = [k for k in (self.data.keys if self.data else []) if k.account_id == account.id]
        self.app.push_screen(account_detail(self.admin_app.admin, account, keys, self.noor.tz, self.now()))

    def _plans(self) -> tuple[list[str], str]:
        catalog = self.admin_app.catalog
        if catalog is None:
            return ["free"], "free"
        return list(catalog.plans), catalog.default_plan

    # -- actions ------------------------------------------------------------------------

    def action_new_account(self) -> None:
        self._new_account()

    @work(group="action", exit_on_error=False)
    async def _new_account(self) -> None:
        if self.admin_app.catalog is None:
            catalog = await self.call(self.admin_app.admin.catalog(), "read the plans")
            if catalog is not FAILED:
                self.admin_app.catalog = catalog
        plans, default = self._plans()
        request = await self.app.push_screen_wait(NewAccountModal(plans, default))
        if request is None:
            return
        account = await self.call(self.admin_app.admin.create_account(request.email, request.plan), "create the account")
        if isinstance(account, Account):
            self.notify(f"{account.email} created on plan {account.plan}. Press 4 then n to give it a key.", title="Account created")
            self.changed("accounts")

    def action_change_email(self) -> None:
        if account := self.selected_account():
            self._change_email(account)

    @work(group="action", exit_on_error=False)
    async def _change_email(self, account: Account) -> None:
        email = await self.app.push_screen_wait(
            PromptModal("Change email", f"New email for {account.email} (a correction: the daemon mails the new address)", value=account.email, validate=email_problem)
        )
        if email and email != account.email:
            if await self.call(self.admin_app.admin.update_account(account.id, email=email), "change the email"):
                self.notify(f"{account.email} is now {email}.")
                self.changed("accounts")
                self.noor.broadcast_changed("privacy")

    def action_change_plan(self) -> None:
        if account := self.selected_account():
            self._change_plan(account)

    @work(group="action", exit_on_error=False)
    async def _change_plan(self, account: Account) -> None:
        plans, _ = self._plans()
        plan = await self.app.push_screen_wait(
            ChoiceModal("Change plan", f"Plan for {account.email}", [(p, p) for p in plans], value=account.plan if account.plan in plans else None)
        )
        if plan and plan != account.plan:
            if await self.call(self.admin_app.admin.update_account(account.id, plan=plan), "change the plan"):
                self.notify(f"{account.email} is on plan {plan}.")
                self.changed("accounts")

    def action_suspend(self) -> None:
        if account := self.selected_account():
            self._suspend(account)

    @work(group="action", exit_on_error=False)
    async def _suspend(self, account: Account) -> None:
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

    def action_export(self) -> None:
        if account := self.selected_account():
            self._export(account)

    @work(group="action", exit_on_error=False)
    async def _export(self, account: Account) -> None:
        await self.export_account(account)

    def action_delete(self) -> None:
        if account := self.selected_account():
            self._delete(account)

    @work(group="action", exit_on_error=False)
    async def _delete(self, account: Account) -> None:
        await self.delete_account(account)
