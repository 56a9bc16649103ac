"""Keys: every API key (display prefix only), with create (shown once), revoke, rotate, suspend and per-key limits."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import DataTable, Input

from noor_daemon.client import Account, IssuedKey, KeyInfo
from noor_tui.formatting import ago, date, parse_time, truncate
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.cells import Column, Ranked, by_rank, lay_out, width_of
from noor_tui.widgets.modals import ConfirmModal, LimitsModal, NewKeyModal, ShowOnceKeyModal
from noor_tui.widgets.quota import state_text

COLUMNS = [
    Column("prefix", "Key", 14),
    Column("name", "Name", (10, 16)),
    Column("account", "Account", (20, 26)),
    Column("state", "State", 11),
    Column("created", "Created", 10, wide_only=True),
    Column("used", "Last used", (9, 10)),
    Column("expires", "Expires", 10, wide_only=True),
]


@dataclass
class KeyData:
    keys: list[KeyInfo]
    accounts: list[Account]


class KeysScreen(NoorScreen):
    MODE = "keys"
    AUTO_FOCUS = "#keys"
    POLL_SECONDS = 10.0
    WATCHES = ("keys", "accounts")
    HELP = (
        "Every API key by its display prefix (NoorAPI keeps only a hash), with its account, state, and when it "
        "was created, last used and expires. A new or rotated key is shown in full once."
    )
    BINDINGS = [
        Binding("n", "new_key", "New"),
        Binding("x", "revoke", "Revoke"),
        Binding("o", "rotate", "Rotate"),
        Binding("s", "suspend", "Suspend/resume"),
        Binding("l", "limits", "Limits"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: KeyData | None = None
        self.filter = ""

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="Filter by prefix, name, account or state…", id="key-filter", classes="filter")
        with Container(id="keys-box", classes="panel") as box:
            box.border_title = "API keys"
            yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        lay_out(self.query_one("#keys", DataTable), COLUMNS, self.app.size.width)

    async def fetch(self) -> KeyData:
        admin = self.admin_app.admin
        return KeyData(await admin.list_keys(), await admin.list_accounts())

    def _cells(self, key: KeyInfo, accounts: dict[str, Account], rank: int, table: DataTable) -> dict:
        now = self.now()
        account = accounts.get(key.account_id)
        dim = "dim" if key.state in ("revoked", "expired") else ""
        return {
            "prefix": Ranked(key.prefix, rank, style="strike dim" if key.state == "revoked" else "bold"),
            "name": Text(truncate(key.name or "–", width_of(table, "name")), style=dim),
            "account": Text(truncate(account.email if account else key.account_id, width_of(table, "account")), style=dim),
            "state": state_text(key.state),
            "created": Text(date(key.created_at, self.noor.tz), style=dim),
            "used": Text(ago(key.last_used_at, now), style=dim or ("" if key.last_used_at else "dim")),
            "expires": Text(ago(key.expires_at, now) if key.expires_at else "never", style=dim),
        }

    def _matches(self, key: KeyInfo, accounts: dict[str, Account]) -> bool:
        if not self.filter:
            return True
        account = accounts.get(key.account_id)
        haystack = " ".join([key.prefix, key.name or "", key.state, key.id, account.email if account else key.account_id])
        return self.filter.lower() in haystack.lower()

    def show(self, data: KeyData) -> None:
        self.data = data
        self.admin_app.directory_loaded(data.accounts, data.keys)
        accounts = {a.id: a for a in data.accounts}
        order = {"active": 0, "suspended": 1, "expired": 2, "revoked": 3}
        keys = sorted(
            (k for k in data.keys if self._matches(k, accounts)),
            key=lambda k: (order.get(k.state, 9), -(_stamp(k.created_at))),
        )
        table = self.query_one("#keys", DataTable)
        with self.app.batch_update():
            columns = lay_out(table, COLUMNS, self.app.size.width)
            shown = [str(k.value) for k in table.rows]
            wanted = [k.id for k in keys]
            for key_id in set(shown) - set(wanted):
                table.remove_row(key_id)
            for rank, key in enumerate(keys):
                cells = self._cells(key, accounts, rank, table)
                if key.id in shown:
                    for column in columns:
                        table.update_cell(key.id, column, cells[column])
                else:
                    table.add_row(*(cells[c] for c in columns), key=key.id)
            table.sort("prefix", key=by_rank)
        live = sum(1 for k in data.keys if k.state == "active")
        box = self.query_one("#keys-box")
        box.border_title = f"API keys · {live} active of {len(data.keys)}"
        box.border_subtitle = f"filter: {self.filter}" if self.filter else ""

    def on_resize(self) -> None:
        if self.data is not None:
            self.show(self.data)

    def selected_key(self) -> KeyInfo | None:
        table = self.query_one("#keys", DataTable)
        if self.data is None or table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return next((k for k in self.data.keys if k.id == row_key.value), None)

    # -- filter -----------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#key-filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#key-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip()
        if self.data is not None:
            self.show(self.data)

    @on(Input.Submitted, "#key-filter")
    def _filter_done(self) -> None:
        self.query_one("#keys", DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#key-filter", Input)
        box.value = ""
        box.remove_class("-shown")
        self.query_one("#keys", DataTable).focus()

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
            self.notify(f"{key.masked} is revoked already.")
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
            self.notify(f"{key.masked} is revoked.", title="Key revoked")
            self.changed("keys")

    def action_rotate(self) -> None:
        key = self.selected_key()
        if key is not None:
            self._rotate(key)

    @work(group="action", exit_on_error=False)
    async def _rotate(self, key: KeyInfo) -> None:
        if key.state == "revoked":
            self.notify(f"{key.masked} is revoked; create a new key instead.", severity="warning")
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                "Rotate key",
                f"Revoke {key.masked} and issue a replacement with the same account, name, models and limits?",
                confirm="Rotate",
                danger=True,
            )
        )
        if not confirmed:
            return
        issued = await self.call(self.admin_app.admin.rotate_key(key.id), "rotate the key")
        if isinstance(issued, IssuedKey):
            self.changed("keys")
            await self.app.push_screen_wait(
                ShowOnceKeyModal("Rotated key", issued.key, f"Replacement for {key.masked}: {issued.prefix}…")
            )

    def action_suspend(self) -> None:
        key = self.selected_key()
        if key is not None:
            self._suspend(key)

    @work(group="action", exit_on_error=False)
    async def _suspend(self, key: KeyInfo) -> None:
        admin = self.admin_app.admin
        if key.state in ("revoked", "expired"):
            self.notify(f"{key.masked} is {key.state}.", severity="warning")
            return
        if key.state == "suspended":
            if await self.app.push_screen_wait(ConfirmModal("Resume key", f"Let {key.masked} make calls again?", confirm="Resume")):
                if await self.call(admin.unsuspend_key(key.id), "resume the key"):
                    self.notify(f"{key.masked} is active again.")
                    self.changed("keys")
            return
        if await self.app.push_screen_wait(
            ConfirmModal("Suspend key", f"Refuse calls with {key.masked} until it is resumed?", confirm="Suspend", danger=True)
        ):
            if await self.call(admin.suspend_key(key.id, reason="suspended from the dashboard"), "suspend the key"):
                self.notify(f"{key.masked} is suspended.")
                self.changed("keys")

    def action_limits(self) -> None:
        key = self.selected_key()
        if key is not None:
            self._limits(key)

    @work(group="action", exit_on_error=False)
    async def _limits(self, key: KeyInfo) -> None:
        limits = await self.app.push_screen_wait(LimitsModal(f"Limits of {key.masked}", key.limits))
        if limits and await self.call(self.admin_app.admin.set_key_limits(key.id, limits), "set the key's limits"):
            self.notify(f"{key.masked}: limits saved.")
            self.changed("keys")


def _stamp(value: str | None) -> float:
    moment = parse_time(value)
    return moment.timestamp() if moment else 0.0
