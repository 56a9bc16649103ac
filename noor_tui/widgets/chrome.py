"""What every screen has around its content: the top bar (screens, connection, clock) and the connection banner."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from noor_tui.connection import Connection
from noor_tui.formatting import clock_time

if TYPE_CHECKING:
    from noor_tui.app import NoorApp


SHORT_LABELS = {"Overview": "Over", "Quotas": "Quota", "Accounts": "Accts", "Privacy": "Priv", "Billing": "Bill"}
"""Under 120 columns the screens that are not shown go by shorter names, so all eight fit in 80."""


class TopBar(Horizontal):
    """`◆ NoorAPI  1 Overview 2 Usage …   ● connected  12:04:33`."""

    def __init__(self, active: str) -> None:
        super().__init__(id="topbar")
        self.active = active

    @property
    def noor(self) -> NoorApp:
        return cast("NoorApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(self.noor.BRAND, id="brand")
        yield Static(id="nav")
        yield Static(id="link")
        yield Static(id="clock")

    def on_mount(self) -> None:
        self.watch(self.app, "connection", self._show_connection)
        self._tick()
        self.set_interval(1.0, self._tick)

    def on_resize(self) -> None:
        """The screens as one line of links: `1 Overview  2 Usage …`, the active one lit."""
        narrow = self.app.size.width < 120
        items = []
        for number, (mode, label) in enumerate(self.noor.NAV, start=1):
            active = mode == self.active
            style = "b $text on $primary 35%" if active else "$text-muted"
            if narrow and not active:
                label = SHORT_LABELS.get(label, label)
            text = f" {number} {label} " if active or not narrow else f"{number} {label}"
            items.append(f"[@click=app.switch_mode('{mode}')][{style}]{text}[/][/]")
        self.query_one("#nav", Static).update((" " if narrow else " ").join(items))

    def _tick(self) -> None:
        self.query_one("#clock", Static).update(clock_time(self.noor.now(), self.noor.tz))

    def _show_connection(self, connection: Connection) -> None:
        link = self.query_one("#link", Static)
        text = {"ok": "● live", "connecting": "◌ connecting"}.get(connection.state, "● offline")
        link.update(text)
        link.set_class(connection.ok, "-ok")
        link.set_class(not connection.ok and connection.state != "connecting", "-down")
        link.tooltip = self.noor.url


class ConnectionBanner(Static):
    """A clear line when the daemon is down or refuses the credentials; hidden while all is well."""

    def on_mount(self) -> None:
        self.watch(self.app, "connection", self._show)

    def _show(self, connection: Connection) -> None:
        visible = connection.state not in ("ok", "connecting")
        self.set_class(visible, "-visible")
        self.set_class(connection.state == "unauthorized", "-auth")
        if visible:
            self.update(f"✗ {connection.message}")
