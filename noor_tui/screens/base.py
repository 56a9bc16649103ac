"""What every dashboard screen shares: the chrome, a poll loop that never overlaps, and API calls that never crash.

A screen's poll is an exclusive worker that fetches and posts `Polled` (or `PollFailed`);
the screen renders it and only then schedules the next poll with `set_timer`, so a slow
daemon slows the dashboard's polls down instead of piling them up (dolphie's loop). A
screen that is not showing does not poll; coming back to it polls at once.

A screen is built while the dashboard idles after its first screen has painted
(`NoorApp.prepare_screens`), or on its first visit if the user gets there first, and that visit
should paint it with its data at once (issue #5: under 200 ms; issue #21: a switch within 100 ms).
So a new screen asks the daemon as it is made (`_fetch_early`; one built out of sight shows the
answer as it comes), comes with its size classes already set, and is restyled as it is shown only
if what its styles depend on changed since it was styled (`styled_as`: a theme change, reloaded
CSS, the terminal's focus): `on_screen_resume` clears the resume's `refresh_styles` otherwise, and
`NoorApp.refresh_css` spares the whole-app restyle Textual asks for with a new mode's screen.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self.styled_as: tuple[int, bool] | None = None
        """The app's `styled_as` when this screen was last styled whole (as it mounted, on a resume that restyled
        it, by a whole-app restyle while shown): if it is the same when the screen is shown, no restyle."""
        self._passes = 0
        """Suspends and resumes still to come from the app building another screen out of sight (`passed_over`)."""
        self._early = self._fetch_early()
        self._set_size_classes()
        with contextlib.suppress(NoActiveAppError):
            self.styled_as = self.noor.styled_as()  # styled with this as it mounts

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
        """The early answer, if it is in: shown before the first paint, so the screen appears with its data.

        A screen built out of sight (`NoorApp.prepare_screens`) awaits it in its poll instead, as it is not
        shown and will not poll on its own: its first visit then only paints."""
        early = self._early
        if early is None or not early.done() or early.cancelled() or early.exception() is not None:
            if early is not None and not self.is_current and not self._polling:
                self._poll = self._poll_worker()
            return  # otherwise the first poll awaits it (or explains its failure)
        self._early = None
        self._apply(early.result())

    def passed_over(self) -> None:
        """The app is about to switch to another mode and back at once, to build that mode's screen out of sight:
        the suspend and resume this sends are no change for this screen (no restyle, its polls go on)."""
        self._passes += 1

    def on_screen_resume(self, event: events.ScreenResume | None = None) -> None:
        # Runs before `Screen`'s own handler (Textual calls a subclass's first): a screen styled as it
        # mounted, and not suspended since, need not be restyled whole (a new mode sends two resumes).
        # (Textual calls each class's handler: a subclass's own `on_screen_resume` need not call this.)
        if self._passes and event is not None:  # passed over: nothing changed while "away"
            self._passes -= 1
            event.refresh_styles = False
            return
        if event is not None:  # restyled whole only if what its styles depend on changed since it was styled
            styled_as = self.noor.styled_as()
            event.refresh_styles = self.styled_as != styled_as
            self.styled_as = styled_as
        if not self.is_current:  # switched away again before this resume was handled: no poll
            return
        if self._polling:  # the first fetch (or one just asked for) is under way: it brings the data
            return
        age = time.monotonic() - self._shown_at
        if age < self.POLL_SECONDS / 2:  # just fetched: the next poll comes on its schedule
            self._schedule(self.POLL_SECONDS - age)
        elif self.loaded:  # its last data paints first: an answer coming in before that frame would delay it
            self.call_after_refresh(self._poll_if_shown)
        else:
            self.poll()

    def _poll_if_shown(self) -> None:
        if self.is_current and not self._polling:
            self.poll()

    def on_screen_suspend(self) -> None:
        if self._passes:  # passed over (`passed_over`): the resume follows at once
            return
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
        if not self.is_current:  # built out of sight: its visit polls again and says what is wrong
            return
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
