"""The last screen of a key holder who deleted their account: what happened, and the way out.

Nothing polls from here: the key no longer works, so asking the daemon again would only show
"refused this API key… Retrying" forever.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.screen import Screen
from textual.widgets import Button, Static


class AccountDeletedScreen(Screen[None]):
    BINDINGS = [Binding("q", "app.quit", "Quit"), Binding("escape", "app.quit", "Quit", show=False)]

    def __init__(self, email: str) -> None:
        super().__init__()
        self.email = email

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="deleted", classes="card"):
            yield Static("Account deleted", classes="title")
            yield Static(
                f"{self.email}, its keys and its usage are deleted. Every key of it stopped working at once, "
                "this one too. Billing records stay with Stripe; an export you saved stays where you saved it.",
                classes="message",
                markup=False,
            )
            yield Button("Quit", variant="primary", id="quit")

    def on_mount(self) -> None:
        self.query_one("#quit", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.app.exit()
