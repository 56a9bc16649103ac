"""The dashboard app: screens as modes, bindings, the command palette, themes, the live feed worker.

`AdminApp` is the operator's dashboard (admin token); `MeApp` is a key holder's view of
their own account (API key), with no way to reach anyone else's. Both reach the daemon
only through `noor_daemon.client`; `make_app` picks one, for `noor tui` and for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import ClassVar

from rich.console import RenderableType
from textual import events, on, work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.pilot import Pilot
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import AwaitMount

from noor_daemon.client import AdminClient, CallEvent, Catalog, KeyInfo, MeClient
from noor_daemon.client import Account as AccountInfo
from noor_tui.commands import NoorCommands
from noor_tui.connection import CONNECTION_ERRORS, Connection, describe, is_connection_problem
from noor_tui.messages import DataChanged
from noor_tui.screens.accounts import AccountsScreen
from noor_tui.screens.base import NoorScreen
from noor_tui.screens.billing import BillingScreen
from noor_tui.screens.help import HelpScreen
from noor_tui.screens.keys import KeysScreen
from noor_tui.screens.me import MeAccountScreen, MeDataScreen, MeUsageScreen
from noor_tui.screens.overview import OverviewScreen
from noor_tui.screens.privacy import PrivacyScreen
from noor_tui.screens.quotas import QuotasScreen
from noor_tui.screens.routes import RoutesScreen
from noor_tui.screens.usage import UsageScreen
from noor_tui.themes import PAIRS, THEMES
from noor_tui.widgets.feed import CallLog, LiveFeed

STYLES = Path(__file__).parent / "styles"
PREPARE_WAIT = 0.1
"""Seconds between checks that the dashboard may build a screen out of sight (`NoorApp.prepare_screens`)."""
PREPARE_QUIET = 0.25
"""No screen is built out of sight this soon after a switch: the screen just shown paints first."""
BUILD_TIMEOUT = 2.0
"""The longest quitting waits for a screen being built (`NoorApp.exit`)."""


class NoorApp(App[None]):
    """What both dashboards share: chrome, themes, connection state, help, palette."""

    TITLE = "NoorAPI"
    BRAND = "◆ NoorAPI"
    NAV: ClassVar[list[tuple[str, str]]] = []
    SELF_SERVICE: ClassVar[bool] = False
    CSS_PATH = [STYLES / "app.tcss", STYLES / "screens.tcss", STYLES / "dialogs.tcss"]
    COMMANDS = App.COMMANDS | {NoorCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("f1", "help", "Help", show=False),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]

    connection: reactive[Connection] = reactive(Connection("connecting"), always_update=True, init=False)
    currency: reactive[str] = reactive("USD", init=False)
    """The daemon's `[budgets] currency`, as the last answer that carried one said: for amounts whose own
    answer does not (the live feed's calls)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        tz: tzinfo | None = None,
        export_dir: Path | None = None,
        theme: str = "noor-dark",
        prepare: bool = True,
    ) -> None:
        super().__init__()
        self.prepare = prepare
        """Build the other screens while idle, so a first visit only paints (`prepare_screens`); tests of a screen
        built on demand, and the snapshots, turn it off."""
        self._leaving = False
        self._switched_at = 0.0
        """When the user last switched screens (`time.monotonic`)."""
        self.url = url
        self._clock = clock
        self.tz = tz if tz is not None else datetime.now().astimezone().tzinfo
        self.export_dir = export_dir or Path.cwd()
        self.feed = CallLog()
        self._failures = 0
        self._showing: str | None = self.current_mode
        """The mode whose screen is being built or shown, while Textual does so (see `refresh_css`): the first
        one until the app has mounted, then the one `switch_mode` shows while it runs."""
        self._css_styled_with: tuple | None = None
        """What Textual's last whole-app restyle was made from (see `refresh_css`)."""
        self._restyles = 0
        """Whole-app restyles run so far (see `styled_as`)."""
        for candidate in THEMES:
            self.register_theme(candidate)
        self.theme = theme
        for number, (mode, label) in enumerate(self.NAV, start=1):
            self.bind(str(number), f"switch_mode('{mode}')", description=label, show=False)

    def now(self) -> datetime:
        return self._clock() if self._clock is not None else datetime.now(UTC)

    # -- garbage collection ----------------------------------------------------------

    @on(events.Mount)
    def _freeze_start_up(self) -> None:
        """Leave what the start-up made (modules, Textual's tables, then the first screen) out of later collections.

        Those objects live as long as the dashboard, yet each full collection walks them all again:
        over 100k objects, 30-100 ms, which lands on a screen's first paint often enough (building
        a screen makes enough objects to set one off). `gc.freeze` moves them to the permanent
        generation, at once and again after the first frame; what is made from then on is
        collected as usual. (Textual itself pauses collection while scrolling, for the same reason.)
        """
        gc.freeze()
        self.call_after_refresh(gc.freeze)

    @on(events.Unmount)
    def _unfreeze(self) -> None:
        gc.unfreeze()  # the next app in this process (tests, benchmarks) starts from a collectable heap

    # -- styling ----------------------------------------------------------------------

    @on(events.Mount)
    def _started(self) -> None:
        self._showing = None  # the first mode's screen is built
        if self.prepare:
            self.prepare_screens()

    def switch_mode(self, mode: str) -> AwaitMount:
        """Textual's, noting which mode is being shown (for `refresh_css`); awaiting it waits for a screen
        built while idle that is still being composed, as it waits for one built on demand."""
        self._showing = mode
        self._switched_at = time.monotonic()
        try:
            shown = super().switch_mode(mode)
        finally:
            self._showing = None
        screen = self.screen
        return shown if screen.is_mounted else AwaitMount(screen, [screen])

    def exit(self, result: None = None, return_code: int = 0, message: RenderableType | None = None) -> None:
        """Textual's, with no new screens built from now on, none torn down half-built, and no focus to hand on.

        A screen being built (out of sight or on its first visit) is finished first: Textual tears a
        half-mounted widget down under its own pending mount handler (the Privacy screen's tabs raised
        "No Tab with id ..." once in CI, issue #21). Textual removes each screen's focused widget first,
        and moves the focus on as it does: the widget loses it and is restyled, with its ancestors (a
        table's restyle is costly), once per screen: about a third of quitting's time (issue #21: `q`
        within 300 ms), for screens about to be destroyed.
        """
        self._leaving = True
        if self.screens_being_built():
            self.run_worker(self._exit_when_built(result, return_code, message), group="exit", exit_on_error=False)
        else:
            self._exit_now(result, return_code, message)

    async def _exit_when_built(self, result: None, return_code: int, message: RenderableType | None) -> None:
        await self.screens_built()
        self._exit_now(result, return_code, message)

    def _exit_now(self, result: None, return_code: int, message: RenderableType | None) -> None:
        for screen in self.screen_stack_everywhere():
            screen.set_reactive(Screen.focused, None)
        super().exit(result, return_code, message)

    def screens_being_built(self) -> list[Screen]:
        return [screen for screen in self.screen_stack_everywhere() if not screen.is_mounted]

    async def screens_built(self, timeout: float = BUILD_TIMEOUT) -> None:
        """Wait (a bounded time) for the screens being built to be mounted, each widget's mount handled."""
        building = self.screens_being_built()
        if building:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(AwaitMount(screen, [screen]) for screen in building)), timeout)

    @contextlib.asynccontextmanager
    async def run_test(self, *args, **kwargs) -> AsyncIterator[Pilot]:
        """Textual's, leaving as `exit` does: with no screen half-built (Textual's own teardown does not ask `exit`)."""
        async with super().run_test(*args, **kwargs) as pilot:
            try:
                yield pilot
            finally:
                self._leaving = True
                await self.screens_built()

    # -- screens built while idle ----------------------------------------------------

    @work(exclusive=True, group="prepare", exit_on_error=False)
    async def prepare_screens(self) -> None:
        """Build each screen not visited yet out of sight, one after the other, once the first has its data.

        A first visit would build its screen (compose, mount, style: 150-350 ms of CPU on a loaded
        2-core machine, issue #21); built while the user reads the first screen, the visit only lays
        it out and paints it. Textual builds a mode's screen only by switching to it, so this switches
        there and back with no frame painted in between (`batch_update`): the screen shown is told it
        was passed over (`NoorScreen.passed_over`) and carries on as it was; the new one composes and
        fetches its data in the background, suspended, and does not poll. A screen's build waits for
        the one before it to be mounted; none starts while the screen shown has no data yet, under a
        dialog or the palette (their own stack), within `PREPARE_QUIET` of a switch, or once closing.
        A key pressed meanwhile is handled between the steps of a build; a number pressed for the
        screen being built shows it when it is composed, one pressed for a screen not built yet builds it.
        """
        for mode, _ in self.NAV:
            while not self._may_prepare():
                if self._leaving:
                    return
                await asyncio.sleep(PREPARE_WAIT)
            if self._built(mode):
                continue
            shown, back, switched_at = self.screen, self.current_mode, self._switched_at
            assert isinstance(shown, NoorScreen)
            with self.batch_update():
                shown.passed_over()
                self.switch_mode(mode)
                screen = self.screen
                self.switch_mode(back)
            self._switched_at = switched_at  # not a switch the user made
            await AwaitMount(screen, [screen])
            # The screen lives as long as the dashboard: out of later collections, as what the start-up made
            # (`_freeze_start_up`), once what its build left behind is collected (a short collection: only
            # what was made since the last freeze is looked at).
            gc.collect()
            gc.freeze()

    def _may_prepare(self) -> bool:
        shown = self.screen
        return (
            not self._leaving
            and self.is_running
            and len(self.screen_stack) == 1
            and isinstance(shown, NoorScreen)
            and shown.loaded
            and time.monotonic() - self._switched_at >= PREPARE_QUIET
        )

    def _built(self, mode: str) -> bool:
        try:
            return bool(self.get_screen_stack(mode))
        except KeyError:
            return False

    def refresh_css(self, animate: bool = True) -> None:
        """Textual's whole-app restyle, spared while a mode's screen is shown if it would change nothing.

        Textual asks for one as it builds a mode's screen (the first one as the app starts, too) and
        again as it shows it (most of a first visit's time, issue #5: about 40 ms each): it re-parses
        the whole stylesheet and restyles the screen being left. If the theme's variables and the ANSI theme are those of the last restyle
        that ran, and the CSS it read is all still there unchanged, every widget is already styled
        with what it would produce: a new screen as it mounts (the default CSS of widget classes
        seen for the first time is added as they mount, for them, as in any mount), a screen shown
        again by its `ScreenResume` (`NoorScreen.on_screen_resume`). A theme change, or a mode
        whose stack holds more than its own screen (a modal over it), still restyles in full.
        """
        variables = self.get_css_variables()
        if self._showing is None or not self._one_screen(self._showing) or not self._styled_with(variables):
            super().refresh_css(animate)
            self._restyles += 1
            self._css_styled_with = (variables, self._css_read(), self.ansi_theme)
            for screen in self.screen_stack:  # restyled by it
                if isinstance(screen, NoorScreen):
                    screen.styled_as = self.styled_as()

    def styled_as(self) -> tuple[int, bool]:
        """What a screen's styles depend on beyond its own classes: the stylesheet as the last whole-app restyle
        left it (a theme change, CSS reloaded) and whether the terminal has focus. Textual restyles only
        the screens shown when these change; a screen styled under the same is styled as it would be now,
        and is shown again without a restyle (`NoorScreen.on_screen_resume`)."""
        return (self._restyles, self.app_focus)

    def _styled_with(self, variables: dict[str, str]) -> bool:
        """Was the last whole-app restyle made from these variables, this ANSI theme and CSS that is all still there?"""
        if self._css_styled_with is None:
            return False
        styled_variables, styled_sources, styled_ansi = self._css_styled_with
        sources = self._css_read()
        return (
            variables == styled_variables
            and self.ansi_theme is styled_ansi
            and all(sources.get(where) == css for where, css in styled_sources.items())
        )

    def _css_read(self) -> dict[tuple[str, str], str]:
        """The stylesheet's CSS by where it was read from (a source's tie-breaker may drop as more widgets
        mount; Textual re-parses for that at its next restyle, not at once)."""
        return {where: source.content for where, source in self.stylesheet.source.items()}

    def _one_screen(self, mode: str) -> bool:
        try:
            return len(self.get_screen_stack(mode)) <= 1
        except KeyError:  # the mode's screen is being built
            return True

    # -- connection state -----------------------------------------------------------

    def connection_ok(self) -> None:
        self._failures = 0
        if not self.connection.ok:
            self.connection = Connection("ok")

    def connection_failed(self, error: Exception) -> float:
        """Show what is wrong; returns how long to wait before the next try."""
        self._failures += 1
        self.connection = describe(error, self.url, self_service=self.SELF_SERVICE, failures=self._failures)
        return self.connection.retry_in

    def broadcast(self, message: Message) -> None:
        """Post `message` to every screen that exists (each mode's screen stack)."""
        for screen in self.screen_stack_everywhere():
            screen.post_message(message)

    def broadcast_changed(self, what: str) -> None:
        self.broadcast(DataChanged(what))

    def screen_stack_everywhere(self) -> Iterator[Screen]:
        """Every screen of every mode visited so far, once each (a mode is built on its first visit)."""
        seen: set[int] = set()
        for mode in dict.fromkeys([self.current_mode, *self.MODES]):
            try:
                stack = self.get_screen_stack(mode)
            except KeyError:  # not visited yet: no screen
                continue
            for screen in stack:
                if id(screen) not in seen:
                    seen.add(id(screen))
                    yield screen

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None, markup: bool = True) -> None:
        """Textual's, always as plain text: a toast names emails, keys and config sections (`[billing]`) as they are."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # -- actions --------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        current = self.current_theme
        self.theme = PAIRS.get(self.theme, "noor-light" if current.dark else "noor-dark")

    async def run_in_mode(self, mode: str, action: str) -> None:
        """Show `mode`'s screen, then run `action` on it (for the command palette)."""
        await self.switch_mode(mode)
        await self.screen.run_action(action)


class AdminApp(NoorApp):
    """The operator's dashboard, with the admin token."""

    NAV = [
        ("overview", "Overview"),
        ("usage", "Usage"),
        ("quotas", "Quotas"),
        ("keys", "Keys"),
        ("accounts", "Accounts"),
        ("privacy", "Privacy"),
        ("billing", "Billing"),
        ("routes", "Routes"),
    ]
    MODES = {
        "overview": OverviewScreen,
        "usage": UsageScreen,
        "quotas": QuotasScreen,
        "keys": KeysScreen,
        "accounts": AccountsScreen,
        "privacy": PrivacyScreen,
        "billing": BillingScreen,
        "routes": RoutesScreen,
    }
    DEFAULT_MODE = "overview"

    def __init__(self, url: str, token: str | None, *, live: bool = True, **options) -> None:
        super().__init__(url, **options)
        self.admin = AdminClient(url, token)
        self.live = live
        self.accounts: dict[str, AccountInfo] = {}
        self.keys: dict[str, KeyInfo] = {}
        self.catalog: Catalog | None = None
        self.directory_ready = asyncio.Event()
        """Set once the accounts are in: the feed waits for it, so it never shows an id where an email belongs."""

    async def on_mount(self) -> None:
        # The screen's own poll goes first; the directory (emails for the labels) and the feed follow the
        # first frame, and the feed shows its first calls once the emails are in (or after 2 s without them).
        self.directory_ready = asyncio.Event()
        self.call_after_refresh(self.refresh_directory)
        if self.live:
            self.call_after_refresh(self.run_feed)

    async def on_unmount(self) -> None:
        await self.admin.close()

    def account_label(self, account_id: str | None) -> str:
        if not account_id:
            return "–"
        account = self.accounts.get(account_id)
        return account.email if account is not None else account_id

    def directory_loaded(self, accounts: list[AccountInfo], keys: list[KeyInfo] | None = None) -> None:
        """Screens that list accounts and keys share what they fetched, for labels elsewhere."""
        changed = {a.id: a.email for a in accounts} != {a.id: a.email for a in self.accounts.values()}
        self.accounts = {a.id: a for a in accounts}
        if keys is not None:
            self.keys = {k.id: k for k in keys}
        if changed:
            for feed in self.query(LiveFeed):
                feed.relabel()

    @work(exclusive=True, group="directory", exit_on_error=False)
    async def refresh_directory(self) -> None:
        """Accounts, keys and the catalog, now and every 30 s, for labels and forms."""
        while True:
            try:
                accounts = await self.admin.list_accounts()
                keys = await self.admin.list_keys()
                self.catalog = await self.admin.catalog()
            except asyncio.CancelledError:
                raise
            except Exception:  # the screens' own polls report what is wrong
                await asyncio.sleep(5)
                continue
            self.directory_loaded(accounts, keys)
            self.currency = self.catalog.currency
            self.directory_ready.set()
            await asyncio.sleep(30)

    @work(exclusive=True, group="directory-accounts", exit_on_error=False)
    async def refresh_accounts(self) -> None:
        """An account the directory does not know yet made a call: its email, now (not in 30 s)."""
        try:
            accounts = await self.admin.list_accounts()
        except CONNECTION_ERRORS:
            return
        self.directory_loaded(accounts)

    @work(exclusive=True, group="feed", exit_on_error=False)
    async def run_feed(self) -> None:
        """Follow the daemon's event stream; reconnect (resuming after the last call seen) when it drops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.directory_ready.wait(), 2.0)
        while True:
            try:
                backlog = 100 if self.feed.last_seq is None else None
                async for item in self.admin.events(after=self.feed.last_seq, backlog=backlog):
                    if isinstance(item, CallEvent):
                        if item.account_id and item.account_id not in self.accounts and self.directory_ready.is_set():
                            self.refresh_accounts()
                        self.feed.add(item)
                    else:
                        self.feed.gap(item.dropped)
                delay = 1.0  # the daemon ended the stream (shutting down): try again shortly
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS as error:
                delay = self.connection_failed(error) if is_connection_problem(error) else 5.0
            except Exception as error:  # a stream cut mid-event, a malformed line: reconnect
                self.log.warning(f"live feed: {error!r}")
                delay = 2.0
            await asyncio.sleep(delay)


class MeApp(NoorApp):
    """A key holder's view of their own account: usage, quota, own keys, export, deletion."""

    BRAND = "◆ NoorAPI · you"
    SELF_SERVICE = True
    NAV = [("account", "Account"), ("usage", "Usage"), ("data", "Your data")]
    MODES = {"account": MeAccountScreen, "usage": MeUsageScreen, "data": MeDataScreen}
    DEFAULT_MODE = "account"

    def __init__(self, url: str, api_key: str, **options) -> None:
        super().__init__(url, **options)
        self.me = MeClient(url, api_key)

    async def on_unmount(self) -> None:
        await self.me.close()


def make_app(
    url: str,
    *,
    token: str | None = None,
    api_key: str | None = None,
    **options,
) -> NoorApp:
    """The admin dashboard, or with `api_key` the self-service view of that key's account."""
    if api_key:
        return MeApp(url, api_key, **options)
    return AdminApp(url, token, **options)


def run(url: str, *, token: str | None = None, api_key: str | None = None) -> None:
    make_app(url, token=token, api_key=api_key).run()
