"""Dialogs: confirmations, typed confirmations, the show-once key, forms, and the export with progress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Function
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, Select, SelectionList, Static
from textual.widgets.option_list import Option

from noor_daemon.client import AdminApiError, DaemonUnreachable, ExportResult

LIMIT_LABELS = {
    "requests_per_minute": "Requests / minute",
    "tokens_per_minute": "Tokens / minute",
    "concurrent_requests": "Concurrent requests",
    "requests_per_day": "Requests / day",
    "tokens_per_day": "Tokens / day",
    "tokens_per_month": "Tokens / month",
}


class Dialog(ModalScreen):
    """A centred box with a title; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CLASSES = "dialog"

    def __init__(self, title: str) -> None:
        super().__init__()
        self.dialog_title = title

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmModal(Dialog, ModalScreen[bool]):
    """Yes or no. `danger` paints the confirm button red."""

    BINDINGS = [Binding("escape,n", "cancel", "Cancel"), Binding("y", "confirm", "Confirm")]

    def __init__(self, title: str, message: str, *, confirm: str = "Confirm", danger: bool = False) -> None:
        super().__init__(title)
        self.message = message
        self.confirm_label = confirm
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="box") as box:
            box.border_title = self.dialog_title
            yield Static(self.message, classes="message")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "primary")

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class TypedConfirmModal(Dialog, ModalScreen[bool]):
    """A destructive action that needs `expected` (an email) typed exactly before it can go ahead."""

    def __init__(self, title: str, message: str, expected: str, *, confirm: str = "Delete") -> None:
        super().__init__(title)
        self.message = message
        self.expected = expected
        self.confirm_label = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="box -danger") as box:
            box.border_title = self.dialog_title
            yield Static(self.message, classes="message")
            yield Label(f"Type [b]{self.expected}[/] to confirm:")
            yield Input(placeholder=self.expected, id="typed", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="error", disabled=True)

    @on(Input.Changed, "#typed")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value.strip() != self.expected

    @on(Input.Submitted, "#typed")
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.query_one("#typed", Input).value.strip() == self.expected:
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class ShowOnceKeyModal(Dialog, ModalScreen[None]):
    """The full key, this once: copy it, store it, and know it will not be shown again."""

    BINDINGS = [Binding("c", "copy", "Copy"), Binding("escape", "cancel", "Close")]

    def __init__(self, title: str, secret: str, about: str) -> None:
        super().__init__(title)
        self.secret = secret
        self.about = about

    def compose(self) -> ComposeResult:
        with Vertical(classes="box -key") as box:
            box.border_title = self.dialog_title
            yield Static(self.about, classes="message")
            yield Static(self.secret, id="secret", classes="secret")
            yield Static(
                "⚠ This is the only time the full key is shown. NoorAPI keeps only its hash; "
                "if it is lost, rotate it to get a new one.",
                classes="warning",
            )
            with Horizontal(classes="buttons"):
                yield Button("Copy to clipboard", id="copy", variant="primary")
                yield Button("I have stored it", id="done")

    def on_mount(self) -> None:
        self.query_one("#copy", Button).focus()

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret)
        self.notify("Copied to the clipboard (through your terminal: OSC 52).", title="Key copied")

    @on(Button.Pressed, "#done")
    def _done(self) -> None:
        self.dismiss(None)


class LinkModal(Dialog, ModalScreen[None]):
    """A web page to hand on (Stripe Checkout or the Customer Portal): copy it or open it in a browser."""

    BINDINGS = [Binding("c", "copy", "Copy"), Binding("b", "browse", "Open"), Binding("escape", "cancel", "Close")]

    def __init__(self, title: str, url: str, about: str) -> None:
        super().__init__(title)
        self.url = url
        self.about = about

    def compose(self) -> ComposeResult:
        with Vertical(classes="box -wide") as box:
            box.border_title = self.dialog_title
            yield Static(self.about, classes="message")
            yield Static(self.url, id="url", classes="secret")
            with Horizontal(classes="buttons"):
                yield Button("Copy", id="copy", variant="primary")
                yield Button("Open in browser", id="browse")
                yield Button("Close", id="done")

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.url)
        self.notify("Link copied (through your terminal: OSC 52).")

    @on(Button.Pressed, "#browse")
    def action_browse(self) -> None:
        self.app.open_url(self.url)

    @on(Button.Pressed, "#done")
    def _done(self) -> None:
        self.dismiss(None)


class PromptModal(Dialog, ModalScreen[str | None]):
    """One line of text (an email, a name), checked by `validate` (which returns an error or None)."""

    def __init__(
        self, title: str, label: str, *, value: str = "", placeholder: str = "",
        validate: Callable[[str], str | None] | None = None, confirm: str = "Save", danger: bool = False,
    ) -> None:
        super().__init__(title)
        self.label = label
        self.value = value
        self.placeholder = placeholder
        self.check = validate or (lambda _text: None)
        self.confirm_label = confirm
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="box -danger" if self.danger else "box") as box:
            box.border_title = self.dialog_title
            yield Label(self.label, markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="value", compact=True)
            yield Static("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "primary")

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        text = self.query_one("#value", Input).value.strip()
        problem = self.check(text)
        if problem:
            self.query_one("#problem", Static).update(problem)
            return
        self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceModal(Dialog, ModalScreen[str | None]):
    """Pick one of a few options (a plan, an account, an overlap): a list inside the dialog, never a dropdown
    that spills over its border. Up/down move, Enter or the button confirms."""

    def __init__(
        self, title: str, label: str, options: list[tuple[str, str]], *, value: str | None = None, confirm: str = "Save",
        message: str = "",
    ) -> None:
        super().__init__(title)
        self.label = label
        self.options = options
        self.initial = value
        self.confirm_label = confirm
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="box") as box:
            box.border_title = self.dialog_title
            if self.message:
                yield Static(self.message, classes="message", markup=False)
            yield Label(self.label)
            yield OptionList(*[Option(Text(label), id=value) for label, value in self.options], id="choice", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="primary")

    def on_mount(self) -> None:
        choice = self.query_one("#choice", OptionList)
        if self.initial is not None:
            self.choose(self.initial)
        elif self.options:
            choice.highlighted = 0
        choice.focus()

    @property
    def value(self) -> str | None:
        """The option under the highlight."""
        choice = self.query_one("#choice", OptionList)
        if choice.highlighted is None:
            return None
        return choice.get_option_at_index(choice.highlighted).id

    def choose(self, value: str) -> None:
        choice = self.query_one("#choice", OptionList)
        choice.highlighted = choice.get_option_index(value)

    @on(OptionList.OptionSelected, "#choice")
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.value is not None:
            self.dismiss(self.value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def email_problem(text: str) -> str | None:
    if "@" not in text or "." not in text.split("@")[-1] or " " in text:
        return "That does not look like an email address."
    return None


@dataclass(frozen=True)
class NewAccount:
    email: str
    plan: str


class NewAccountModal(Dialog, ModalScreen[NewAccount | None]):
    def __init__(self, plans: list[str], default_plan: str) -> None:
        super().__init__("New account")
        self.plans = plans
        self.default_plan = default_plan if default_plan in plans else (plans[0] if plans else "free")

    def compose(self) -> ComposeResult:
        with Vertical(classes="box") as box:
            box.border_title = self.dialog_title
            yield Label("Email (the only personal data an account holds)")
            yield Input(placeholder="dev@example.com", id="email", compact=True)
            yield Label("Plan")
            yield Select([(p, p) for p in self.plans or ["free"]], value=self.default_plan, allow_blank=False, id="plan", compact=True)
            yield Static("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Create", id="confirm", variant="primary")

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        email = self.query_one("#email", Input).value.strip()
        if problem := email_problem(email):
            self.query_one("#problem", Static).update(problem)
            return
        self.dismiss(NewAccount(email, str(self.query_one("#plan", Select).value)))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


EXPIRIES = [("Never", 0), ("1 day", 86400), ("7 days", 7 * 86400), ("30 days", 30 * 86400), ("90 days", 90 * 86400), ("1 year", 365 * 86400)]


@dataclass(frozen=True)
class NewKey:
    account: str
    name: str | None
    models: list[str] | None
    expires_in: int | None


class NewKeyModal(Dialog, ModalScreen[NewKey | None]):
    """Account, name, allowed models (none ticked: all), expiry."""

    def __init__(self, accounts: list[tuple[str, str]], models: list[str], account: str | None = None) -> None:
        super().__init__("New API key")
        self.accounts = accounts
        self.models = models
        self.account = account

    def compose(self) -> ComposeResult:
        with Vertical(classes="box -wide") as box:
            box.border_title = self.dialog_title
            yield Label("Account")
            yield Select(self.accounts, value=self.account or Select.NULL, id="account", prompt="Choose an account", compact=True)
            yield Label("Name (optional, e.g. the program or machine using it)")
            yield Input(placeholder="ci-runner", id="name", compact=True)
            if self.models:
                yield Label("Allowed models (none ticked: every model)")
                yield SelectionList[str](*[(m, m) for m in self.models], id="models", compact=True)
            yield Label("Expires")
            yield Select(EXPIRIES, value=0, allow_blank=False, id="expires", compact=True)
            yield Static("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Create key", id="confirm", variant="primary")

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        account = self.query_one("#account", Select).value
        if account is Select.NULL:
            self.query_one("#problem", Static).update("Choose the account the key belongs to.")
            return
        models = list(self.query_one("#models", SelectionList).selected) if self.models else []
        expires = int(self.query_one("#expires", Select).value or 0)
        name = self.query_one("#name", Input).value.strip() or None
        self.dismiss(NewKey(str(account), name, models or None, expires or None))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _positive_or_blank(text: str) -> bool:
    return not text.strip() or (text.strip().isdigit() and int(text) > 0)


class LimitsModal(Dialog, ModalScreen[dict[str, int] | None]):
    """A key's own limits, tighter than its account's plan; blank means "the plan's"."""

    def __init__(
        self, title: str, current: dict[str, int] | None, plan_limits: dict[str, int] | None = None, plan: str | None = None
    ) -> None:
        super().__init__(title)
        self.current = current or {}
        self.plan_limits = plan_limits or {}
        self.plan = plan

    def compose(self) -> ComposeResult:
        with Vertical(classes="box -wide") as box:
            box.border_title = self.dialog_title
            plan = f"plan {self.plan}" if self.plan else "the account's plan"
            yield Static(f"The key's own limits are filled in; a blank field follows {plan} (shown greyed).", classes="message", markup=False)
            for name, label in LIMIT_LABELS.items():
                with Horizontal(classes="field"):
                    yield Label(label)
                    planned = self.plan_limits.get(name)
                    yield Input(
                        str(self.current.get(name, "")), id=f"limit-{name}", type="integer",
                        placeholder=f"plan: {planned:,}" if planned is not None else "plan: no limit",
                        validators=[Function(_positive_or_blank, "a positive whole number")], compact=True,
                    )
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save limits", id="confirm", variant="primary")

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        limits = {}
        for name in LIMIT_LABELS:
            text = self.query_one(f"#limit-{name}", Input).value.strip()
            if text:
                if not _positive_or_blank(text):
                    self.notify(f"{LIMIT_LABELS[name]} must be a positive whole number.", severity="error")
                    return
                limits[name] = int(text)
        if not limits:
            self.notify("Set at least one limit (the daemon keeps a key's overrides; it cannot clear them all).", severity="warning")
            return
        self.dismiss(limits)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


Exporter = Callable[[Path, str, Callable[[int, "int | None"], None]], Awaitable[ExportResult]]


class ExportModal(Dialog, ModalScreen[ExportResult | None]):
    """Export an account's data to a file (0600), with progress, then say where it is."""

    BINDINGS = [Binding("escape", "cancel", "Close")]

    def __init__(self, title: str, about: str, default_path: Path, exporter: Exporter) -> None:
        super().__init__(title)
        self.about = about
        self.default_path = default_path
        self.exporter = exporter
        self.result: ExportResult | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="box -wide") as box:
            box.border_title = self.dialog_title
            yield Static(self.about, classes="message")
            with Horizontal(classes="field"):
                yield Label("Format")
                yield Select([("JSON (everything)", "json"), ("CSV (usage events)", "csv")], value="json", allow_blank=False, id="format", compact=True)
            with Horizontal(classes="field"):
                yield Label("File")
                yield Input(str(self.default_path), id="path", compact=True)
            yield ProgressBar(id="progress", show_eta=False)
            yield Static("", id="status", classes="status")
            with Horizontal(classes="buttons"):
                yield Button("Close", id="cancel")
                yield Button("Export", id="confirm", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#progress", ProgressBar).display = False
        self.query_one("#confirm", Button).focus()  # Enter exports; Tab Tab Enter never closes without exporting

    @on(Select.Changed, "#format")
    def _format(self, event: Select.Changed) -> None:
        path = self.query_one("#path", Input)
        current = Path(path.value)
        if current.suffix in (".json", ".csv"):
            path.value = str(current.with_suffix(f".{event.value}"))

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#confirm")
    def _start(self) -> None:
        if self.result is not None:
            self.dismiss(self.result)
            return
        self.run_export()

    @work(exclusive=True, group="export", exit_on_error=False)
    async def run_export(self) -> None:
        path = Path(self.query_one("#path", Input).value).expanduser()
        fmt = str(self.query_one("#format", Select).value)
        bar = self.query_one("#progress", ProgressBar)
        status = self.query_one("#status", Static)
        button = self.query_one("#confirm", Button)
        button.disabled = True
        bar.display = True
        bar.update(total=None, progress=0)
        status.update("Exporting…")

        def progress(done: int, total: int | None) -> None:
            bar.update(total=total if total else None, progress=done)
            status.update(f"Exporting… {done:,} usage events" + (f" of {total:,}" if total else ""))

        try:
            result = await self.exporter(path, fmt, progress)
        except FileExistsError:
            status.update(f"[b $error]{path} exists already.[/] Choose another file name.")
            button.disabled = False
            return
        except (AdminApiError, DaemonUnreachable, OSError) as exc:
            status.update(f"[b $error]Export failed:[/] {getattr(exc, 'message', None) or exc}")
            button.disabled = False
            return
        except asyncio.CancelledError:
            raise
        self.result = result
        bar.update(total=max(1, result.events or 1), progress=max(1, result.events or 1))
        events = f"{result.events:,} usage events, " if result.events is not None else ""
        status.update(f"[b $success]Done:[/] {events}{result.bytes:,} bytes in\n[b]{result.path}[/] (readable by you only)")
        button.label = "Done"
        button.disabled = False
        button.focus()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(self.result)
