"""What every screen has around its content: the top bar (screens, connection, clock) and the connection banner."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click
from textual.widgets import Static

from noor_tui.connection import Connection
from noor_tui.formatting import clock_time

if TYPE_CHECKING:
    from noor_tui.app import NoorApp


class NavItem(Static):
    """One screen in the top bar; click it or press its number."""

    def __init__(self, number: int, mode: str, label: str, active: bool) -> None:
        super().__init__(f"{number} {label}", classes="nav-item" + (" -active" if active else ""))
        self.mode = mode

    def on_click(self, event: Click) -> None:
        event.stop()
        self.app.switch_mode(self.mode)


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
        with Horizontal(id="nav"):
            for number, (mode, label) in enumerate(self.noor.NAV, start=1):
                yield NavItem(number, mode, label, mode == self.active)
        yield Static(id="link")
        yield Static(id="clock")

    def on_mount(self) -> None:
        self.watch(self.app, "connection", self._show_connection)
        self._tick()
        self.set_interval(1.0, self._tick)

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
