"""What every dashboard screen shares: the chrome, a poll loop that never overlaps, and API calls that never crash.

A screen's poll is an exclusive worker that fetches and posts `Polled` (or `PollFailed`);
the screen renders it and only then schedules the next poll with `set_timer`, so a slow
daemon slows the dashboard's polls down instead of piling them up (dolphie's loop). A
screen that is not showing does not poll; coming back to it polls at once.

A screen is built on its first visit, and that visit should paint it with its data at once
(issue #5: the usage screen over 10M events in under 200 ms). So a new screen asks the daemon
as it is made (`_fetch_early`), comes with its size classes already set, and is not restyled
again as it is first shown: it was styled as it mounted (`on_screen_resume` clears the resume's
`refresh_styles`; `NoorApp.refresh_css` spares the whole-app restyle Textual asks for with a new
mode's screen).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.types import NoActiveAppError
from textual.worker import Worker, WorkerState

from noor_daemon.client import AdminApiError, DaemonUnreachable
from noor_tui.connection import CONNECTION_ERRORS, is_connection_problem
from noor_tui.messages import DataChanged, PollFailed, Polled
from noor_tui.widgets.chrome import ConnectionBanner, TopBar
from noor_tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from noor_tui.app import AdminApp, MeApp, NoorApp

T = TypeVar("T")


class Failed:
    """What `NoorScreen.call` returns when the call failed (and the user was told)."""

    def __bool__(self) -> bool:
        return False


FAILED = Failed()


class NoorScreen(Screen):
    MODE: ClassVar[str] = ""
    """The app mode this screen is shown in (its place in the top bar)."""
    POLL_SECONDS: ClassVar[float] = 5.0
    PALETTE: ClassVar[list[tuple[str, str, str]]] = []
    """Extra command-palette entries: (title, help, action) beyond the screen's bindings."""
    WATCHES: ClassVar[tuple[str, ...]] = ()
    """`DataChanged.what` values that make this screen poll again at once."""
    HELP: ClassVar[str] = ""
    """What the screen shows, for the help screen."""

    BINDINGS = [Binding("ctrl+r", "refresh", "Refresh", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self.loaded = False
        self.polls = 0
        self._shown_at = -1e9
        self._poll: Worker | None = None
        self._fresh = True
        """Styled as it mounted and not suspended since: showing it needs no restyle."""
        self._early = self._fetch_early()
        self._set_size_classes()

    def _set_size_classes(self) -> None:
        """The breakpoint classes (`-narrow`/`-wide`, `-short`/`-tall`) as Textual sets them at the first
        resize, set now: set once the screen is mounted, they would restyle all of it a second time."""
        try:
            width, height = self.app.size
        except NoActiveAppError:
            return
        for own, shared, value in (
            (self.HORIZONTAL_BREAKPOINTS, self.app.HORIZONTAL_BREAKPOINTS, width),
            (self.VERTICAL_BREAKPOINTS, self.app.VERTICAL_BREAKPOINTS, height),
        ):
            for threshold, name in sorted((shared if own is None else own) or [], reverse=True):
                if value >= threshold:
                    self.add_class(name, update=False)
                    break

    def _fetch_early(self) -> asyncio.Task | None:
        """Ask the daemon as the screen is made, so the answer is in by the time it is composed and
        laid out (the first poll takes it); a screen's first paint then comes with its data."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        task = loop.create_task(self.fetch())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "exception was never retrieved"
        return task

    # -- conveniences -------------------------------------------------------------

    @property
    def noor(self) -> NoorApp:
        return cast("NoorApp", self.app)

    @property
    def admin_app(self) -> AdminApp:
        return cast("AdminApp", self.app)

    @property
    def me_app(self) -> MeApp:
        return cast("MeApp", self.app)

    def now(self) -> datetime:
        return self.noor.now()

    # -- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TopBar(self.MODE)
        yield ConnectionBanner(id="banner")
        yield from self.compose_body()
        yield KeyFooter()

    def compose_body(self) -> ComposeResult:
        yield from ()

    # -- polling ------------------------------------------------------------------

    @on(events.Mount)
    def _mounted(self) -> None:
        self.call_next(self._take_early)

    def _take_early(self) -> None:
        """The early answer, if it is in: shown before the first paint, so the screen appears with its data."""
        early = self._early
        if early is None or not early.done() or early.cancelled() or early.exception() is not None:
            return  # the first poll awaits it (or explains its failure)
        self._early = None
        self._apply(early.result())

    def on_screen_resume(self, event: events.ScreenResume | None = None) -> None:
        # Runs before `Screen`'s own handler (Textual calls a subclass's first): a screen styled as it
        # mounted, and not suspended since, need not be restyled whole (a new mode sends two resumes).
        # (Textual calls each class's handler: a subclass's own `on_screen_resume` need not call this.)
        if self._fresh and event is not None:
            event.refresh_styles = False
        if not self.is_current:  # switched away again before this resume was handled: no poll
            return
        if self._polling:  # the first fetch (or one just asked for) is under way: it brings the data
            return
        age = time.monotonic() - self._shown_at
        if age < self.POLL_SECONDS / 2:  # just fetched: the next poll comes on its schedule
            self._schedule(self.POLL_SECONDS - age)
        else:
            self.poll()

    def on_screen_suspend(self) -> None:
        self._fresh = False
        self._stop_timer()

    @property
    def _polling(self) -> bool:
        return self._poll is not None and self._poll.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def poll(self) -> None:
        """Fetch now (cancelling a fetch in flight and the scheduled one)."""
        self._stop_timer()
        self._poll = self._poll_worker()

    def action_refresh(self) -> None:
        self.poll()

    async def fetch(self) -> Any:
        """The screen's data, from the daemon (override)."""
        return None

    def show(self, data: Any) -> None:
        """Render what `fetch` returned (override)."""

    @work(exclusive=True, group="poll", exit_on_error=False)
    async def _poll_worker(self) -> None:
        early, self._early = self._early, None
        try:
            data = await (early if early is not None else self.fetch())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # explained by the banner or a notification, then retried
            self.post_message(PollFailed(error))
            return
        self.post_message(Polled(data))

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        message.stop()
        self._apply(message.data)
        self._schedule(self.POLL_SECONDS)

    def _apply(self, data: Any) -> None:
        self.noor.connection_ok()
        self.polls += 1
        try:
            self.show(data)
        except Exception as error:  # a rendering bug must not take the dashboard down
            self.log.error(f"{type(self).__name__}.show failed: {error!r}")
            self.notify(f"Could not show this screen's data ({type(error).__name__}).", severity="error")
        self.loaded = True
        self._shown_at = time.monotonic()

    @on(PollFailed)
    def _poll_failed(self, message: PollFailed) -> None:
        message.stop()
        error = message.error
        if is_connection_problem(error):
            delay = self.noor.connection_failed(error)
        elif isinstance(error, CONNECTION_ERRORS):
            self.noor.connection_ok()
            self.notify(getattr(error, "message", str(error)), severity="error", title="The daemon said no")
            delay = self.POLL_SECONDS
        else:
            self.log.error(f"{type(self).__name__}.fetch failed: {error!r}")
            self.notify(f"Could not read this screen's data ({type(error).__name__}); retrying.", severity="error")
            delay = max(self.POLL_SECONDS, 2.0)
        self._schedule(delay)

    def _schedule(self, delay: float) -> None:
        self._stop_timer()
        if self.is_current:
            self._timer = self.set_timer(delay, self.poll)

    @on(DataChanged)
    def _data_changed(self, message: DataChanged) -> None:
        if message.what in self.WATCHES and self.is_current:
            self.poll()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """An action that failed in a way `call` does not explain: say so rather than fail silently."""
        if event.state == WorkerState.ERROR and event.worker.group == "action":
            error = event.worker.error
            self.notify(f"That did not work ({type(error).__name__}: {error}).", severity="error")

    # -- calls for actions --------------------------------------------------------

    async def call(self, awaitable: Awaitable[T], doing: str) -> T | Failed:
        """Await an API call for a user action; a refusal becomes a notification, an outage the banner."""
        try:
            result = await awaitable
        except AdminApiError as error:
            if is_connection_problem(error):
                self.noor.connection_failed(error)
            self.notify(error.message, severity="error", title=f"Could not {doing}")
            return FAILED
        except DaemonUnreachable as error:
            self.noor.connection_failed(error)
            self.notify(f"The daemon is not reachable ({error.reason}).", severity="error", title=f"Could not {doing}")
            return FAILED
        self.noor.connection_ok()
        return result

    def changed(self, what: str) -> None:
        """Tell every screen that `what` changed, and poll this one now."""
        self.noor.broadcast(DataChanged(what))
        self.poll()
