"""Keys: every API key (display prefix only), with create (shown once), revoke, rotate (with an overlap),
suspend (with a reason) and per-key limits."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container

from noor_daemon.client import Account, IssuedKey, KeyInfo
from noor_tui.details.keys import key_detail
from noor_tui.formatting import ago, date, date_time, parse_time
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.modals import ChoiceModal, ConfirmModal, LimitsModal, NewKeyModal, PromptModal, ShowOnceKeyModal
from noor_tui.widgets.quota import state_text
from noor_tui.widgets.records import Column, Record, RecordTable

COLUMNS = [
    Column("prefix", "Key", 14),
    Column("name", "Name", 10, grow=1),
    Column("account", "Account", 18, grow=2),
    Column("state", "State", 11),
    Column("created", "Created", 10, drop=2),
    Column("used", "Last used", 9),
    Column("expires", "Expires", 10, drop=1),
]
STATE_ORDER = {"active": 0, "suspended": 1, "expired": 2, "revoked": 3}
GRACES = [
    ("No overlap: revoke the old key now", "0"),
    ("Keep the old key 1 hour", "3600"),
    ("Keep the old key 24 hours", "86400"),
    ("Keep the old key 7 days", "604800"),
]


@dataclass
class KeyData:
    keys: list[KeyInfo]
    accounts: list[Account]


def _stamp(value: str | None) -> float:
    moment = parse_time(value)
    return moment.timestamp() if moment else 0.0


class KeysScreen(NoorScreen):
    MODE = "keys"
    AUTO_FOCUS = "#keys DataTable"
    POLL_SECONDS = 10.0
    WATCHES = ("keys", "accounts")
    HELP = (
        "Every API key by its display prefix (NoorAPI keeps only a hash), with its account, state, and when it "
        "was created, last used and expires. A new or rotated key is shown in full once; a rotation can keep the "
        "old key working for a while so its programs can switch. Enter shows a key's limits, use and history."
    )
    BINDINGS = [
        Binding("n", "new_key", "New"),
        Binding("x", "revoke", "Revoke"),
        Binding("o", "rotate", "Rotate"),
        Binding("s", "suspend", "Suspend/resume"),
        Binding("l", "limits", "Limits"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: KeyData | None = None

    def compose_body(self) -> ComposeResult:
        with Container(id="keys-box", classes="panel") as box:
            box.border_title = "API keys"
            yield RecordTable(COLUMNS, id="keys", empty="No keys yet: press n to create one.")

    @property
    def table(self) -> RecordTable:
        return self.query_one("#keys", RecordTable)

    async def fetch(self) -> KeyData:
        admin = self.admin_app.admin
        return KeyData(await admin.list_keys(), await admin.list_accounts())

    def _record(self, key: KeyInfo, accounts: dict[str, Account]) -> Record:
        now = self.now()
        account = accounts.get(key.account_id)
        dim = "dim" if key.state in ("revoked", "expired") else ""
        email = account.email if account else key.account_id
        return Record(
            key.id,
            {
                "prefix": Text(key.prefix, style="strike dim" if key.state == "revoked" else "bold"),
                "name": Text(key.name or "–", style=dim),
                "account": Text(email, style=dim),
                "state": state_text(key.state),
                "created": Text(date(key.created_at, self.noor.tz), style=dim),
                "used": Text(ago(key.last_used_at, now), style=dim or ("" if key.last_used_at else "dim")),
                "expires": Text(ago(key.expires_at, now) if key.expires_at else "never", style=dim),
            },
            item=key,
            sort={
                "state": STATE_ORDER.get(key.state, 9), "created": _stamp(key.created_at),
                "used": -_stamp(key.last_used_at), "expires": _stamp(key.expires_at) or None,
            },
            fields={"id": key.id, "account_id": key.account_id},
            copy=key.id,
        )

    def show(self, data: KeyData) -> None:
        self.data = data
        self.admin_app.directory_loaded(data.accounts, data.keys)
        accounts = {a.id: a for a in data.accounts}
        keys = sorted(data.keys, key=lambda k: (STATE_ORDER.get(k.state, 9), -_stamp(k.created_at)))
        self.table.show(self._record(k, accounts) for k in keys)
        live = sum(1 for k in data.keys if k.state == "active")
        self.query_one("#keys-box").border_title = f"API keys · {live} active of {len(data.keys)}"

    def selected_key(self) -> KeyInfo | None:
        record = self.table.selected
        return record.item if record is not None else None

    @on(RecordTable.Opened, "#keys")
    def _open(self, event: RecordTable.Opened) -> None:
        key: KeyInfo = event.record.item
        account = self.admin_app.accounts.get(key.account_id)
        label = f"{account.email} ({key.account_id})" if account else key.account_id
        self.app.push_screen(
            key_detail(self.admin_app.admin, key, label, account.plan if account else None, self.admin_app.catalog,
                       self.noor.tz, self.now(), self.noor.currency)
        )

    # -- actions ------------------------------------------------------------------------

    def action_new_key(self) -> None:
        self._new_key()

    @work(group="action", exit_on_error=False)
    async def _new_key(self) -> None:
        admin = self.admin_app.admin
        accounts = self.data.accounts if self.data else await admin.list_accounts()
        if not accounts:
            self.notify("Create an account first (screen 5, then n).", severity="warning", title="No accounts")
            return
        catalog = self.admin_app.catalog
        models = catalog.models if catalog else []
        selected = self.selected_key()
        request = await self.app.push_screen_wait(
            NewKeyModal([(a.email, a.id) for a in accounts], models, account=selected.account_id if selected else None)
        )
        if request is None:
            return
        issued = await self.call(
            admin.create_key(request.account, name=request.name, models=request.models, expires_in=request.expires_in),
            "create the key",
        )
        if isinstance(issued, IssuedKey):
            self.changed("keys")
            email = self.admin_app.account_label(issued.account_id)
            await self.app.push_screen_wait(
                ShowOnceKeyModal("New API key", issued.key, f"Key {issued.prefix}… for {email}" + (f" ({issued.name})" if issued.name else ""))
            )

    def action_revoke(self) -> None:
        key = self.selected_key()
        if key is not None:
            self._revoke(key)

    @work(group="action", exit_on_error=False)
    async def _revoke(self, key: KeyInfo) -> None:
        if key.state == "revoked":
            self.notify(f"{key.masked} is revoked already.", markup=False)
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                "Revoke key",
                f"Revoke {key.masked}{' (' + key.name + ')' if key.name else ''}? Calls with it are refused at once; "
                "this cannot be undone.",
                confirm="Revoke",
                danger=True,
            )
        )
        if confirmed and await self.call(self.admin_app.admin.revoke_key(key.id), "revoke the key"):
            self.notify(f"{key.masked} is revoked.", title="Key revoked", markup=False)
            self.changed("keys")

    def action_rotate(self) -> None:
        key = self.selected_key()
        if key is not None:
            self._rotate(key)

    @work(group="action", exit_on_error=False)
    async def _rotate(self, key: KeyInfo) -> None:
        if key.state == "revoked":
            self.notify(f"{key.masked} is revoked; create a new key instead.", severity="warning", markup=False)
            return
        grace = await self.app.push_screen_wait(
            ChoiceModal(
                "Rotate key",
                "Overlap",
                GRACES,
                value="0",
                confirm="Rotate",
                message=f"Issue a replacement for {key.masked} with the same account, name, models and limits. "
                "The old key can keep working for a while, so the programs using it can switch without a gap.",
            )
        )
        if grace is None:
            return
        issued = await self.call(self.admin_app.admin.rotate_key(key.id, grace=int(grace) or None), "rotate the key")
        if isinstance(issued, IssuedKey):
            self.changed("keys")
            until = (f"{key.masked} keeps working until {date_time(issued.previous_expires_at, self.noor.tz)}."
                     if issued.previous_expires_at else f"{key.masked} is revoked.")
            await self.app.push_screen_wait(
                ShowOnceKeyModal("Rotated key", issued.key, f"Replacement for {key.masked}: {issued.prefix}… {until}")
            )

    def action_suspend(self) -> None:
        key = self.selected_key()
        if key is not None:
            self._suspend(key)

    @work(group="action", exit_on_error=False)
    async def _suspend(self, key: KeyInfo) -> None:
        admin = self.admin_app.admin
        if key.state in ("revoked", "expired"):
            self.notify(f"{key.masked} is {key.state}.", severity="warning", markup=False)
            return
        if key.state == "suspended":
            if await self.app.push_screen_wait(ConfirmModal("Resume key", f"Let {key.masked} make calls again?", confirm="Resume")):
                if await self.call(admin.unsuspend_key(key.id), "resume the key"):
                    self.notify(f"{key.masked} is active again.", markup=False)
                    self.changed("keys")
            return
        reason = await self.app.push_screen_wait(
            PromptModal(
                "Suspend key",
                f"Refuse calls with {key.masked} until it is resumed. Why? (kept in the audit log; no personal data)",
                placeholder="e.g. leaked in a public repository",
                confirm="Suspend",
                danger=True,
            )
        )
        if reason is None:
            return
        if await self.call(admin.suspend_key(key.id, reason=reason or "suspended from the dashboard"), "suspend the key"):
            self.notify(f"{key.masked} is suspended.", markup=False)
            self.changed("keys")

    def action_limits(self) -> None:
        key = self.selected_key()
        if key is not None:
            self._limits(key)

    @work(group="action", exit_on_error=False)
    async def _limits(self, key: KeyInfo) -> None:
        account = self.admin_app.accounts.get(key.account_id)
        catalog = self.admin_app.catalog
        plan = account.plan if account else None
        plan_limits = (catalog.plans.get(plan) if catalog and plan else None) or {}
        limits = await self.app.push_screen_wait(LimitsModal(f"Limits of {key.masked}", key.limits, plan_limits, plan))
        if limits and await self.call(self.admin_app.admin.set_key_limits(key.id, limits), "set the key's limits"):
            self.notify(f"{key.masked}: limits saved.", markup=False)
            self.changed("keys")
