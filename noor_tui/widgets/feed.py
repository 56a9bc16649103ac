"""The live feed: metered calls as they commit, newest first. Ids and numbers only, never content.

The app's feed worker appends calls to a bounded `CallLog`; the `LiveFeed` table catches up
with it a few times a second, diffing by call (drop rows that aged out, add new ones)
inside `batch_update`, so a burst of traffic is one repaint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widgets import DataTable

from noor_daemon.client import CallEvent
from noor_tui.formatting import clock_time, duration_ms, si, truncate
from noor_tui.widgets.cells import Ranked, by_rank

if TYPE_CHECKING:
    from noor_tui.app import NoorApp


class CallLog:
    """The most recent calls, as (epoch, call). The epoch moves on when the daemon restarted (its
    sequence numbers start again), so row keys stay unique."""

    def __init__(self, size: int = 500) -> None:
        self.calls: deque[tuple[int, CallEvent]] = deque(maxlen=size)
        self.epoch = 0
        self.last_seq: int | None = None
        self.version = 0
        self.dropped = 0
        self.received = 0

    def add(self, event: CallEvent) -> None:
        if self.last_seq is not None and event.seq <= self.last_seq:
            self.epoch += 1
        self.last_seq = event.seq
        self.calls.append((self.epoch, event))
        self.received += 1
        self.version += 1

    def gap(self, dropped: int) -> None:
        self.dropped += dropped
        self.version += 1


def status_text(status: int) -> Text:
    if status < 400:
        style = "green"
    elif status < 500:
        style = "yellow"
    else:
        style = "bold red"
    return Text(str(status), style=style)


WIDE = (
    ("time", "Time", 8),
    ("account", "Account", 20),
    ("key", "Key", 14),
    ("model", "Model", 11),
    ("status", "Status", 6),
    ("tokens", "Tokens", 6),
    ("latency", "Latency", 8),
    ("ttft", "TTFT", 7),
)
NARROW = (
    ("time", "Time", 8),
    ("account", "Account", 15),
    ("key", "Key", 14),
    ("model", "Model", 9),
    ("status", "St", 3),
    ("tokens", "Tok", 5),
    ("latency", "Latency", 7),
)
TINY = (
    ("time", "Time", 8),
    ("account", "Account", 13),
    ("model", "Model", 9),
    ("status", "St", 3),
    ("tokens", "Tok", 5),
    ("latency", "Latency", 7),
)
"""The feed's own width picks the set: 96 columns and up, 76 and up, or fewer (no key, no TTFT)."""


class LiveFeed(DataTable):
    """Newest call on top, at most `limit` rows; `paused` freezes it while calls keep arriving."""

    DEFAULT_CSS = """
    LiveFeed { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    """

    def __init__(self, *, limit: int = 200, account_label: Callable[[str | None], str] | None = None, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", show_cursor=False)
        self.limit = limit
        self.account_label = account_label or (lambda account_id: account_id or "–")
        self.paused = False
        self._shown: list[str] = []
        self._version_seen = -1
        self._columns: tuple = ()

    @property
    def noor(self) -> NoorApp:
        return cast("NoorApp", self.app)

    def on_mount(self) -> None:
        self._lay_out(self.size.width or self.app.size.width)
        self.set_interval(0.25, self.catch_up)

    def on_resize(self) -> None:
        self._lay_out(self.size.width)

    def _lay_out(self, width: int) -> None:
        columns = WIDE if width >= 96 else NARROW if width >= 76 else TINY
        if columns is self._columns:
            return
        self._columns = columns
        self.clear(columns=True)
        self._shown = []
        for key, label, size in columns:
            self.add_column(label, key=key, width=size)
        self.catch_up(force=True)

    def cells(self, epoch: int, event: CallEvent) -> list:
        widths = {key: size for key, _, size in self._columns}
        cells = {
            "time": Ranked(clock_time(event.ts, self.noor.tz), (epoch, event.seq), style="dim"),
            "account": truncate(self.account_label(event.account_id), widths["account"]),
            "key": event.key_prefix or Text("–", style="dim"),
            "model": truncate(event.model, widths["model"]),
            "status": status_text(event.status),
            "tokens": Text(si(event.total_tokens) if event.total_tokens else "–", justify="right"),
            "latency": Text(duration_ms(event.latency_ms), justify="right"),
            "ttft": Text(duration_ms(event.ttft_ms) if event.ttft_ms is not None else "–", justify="right", style="dim"),
        }
        return [cells[key] for key, _, _ in self._columns]

    def catch_up(self, force: bool = False) -> None:
        """Bring the rows in line with the app's call log (when on screen and not paused)."""
        if not force and not self.screen.is_current:
            return
        log = self.noor.feed
        if log.version == self._version_seen and not force:
            return
        self._caption(log)
        if self.paused and not force:
            return
        self._version_seen = log.version
        wanted = {f"{epoch}:{event.seq}": (epoch, event) for epoch, event in list(log.calls)[-self.limit :]}
        stale = [key for key in self._shown if key not in wanted]
        fresh = [key for key in wanted if key not in set(self._shown)]
        if not stale and not fresh:
            return
        with self.app.batch_update():
            for key in stale:
                self.remove_row(key)
            for key in fresh:
                self.add_row(*self.cells(*wanted[key]), key=key)
            self._shown = list(wanted)
            if fresh:
                self.sort("time", key=by_rank, reverse=True)

    def _caption(self, log: CallLog) -> None:
        parent = self.parent
        if parent is not None and parent.has_class("panel"):
            skipped = f" · {log.dropped:,} skipped (reader too slow)" if log.dropped else ""
            paused = " · PAUSED (p resumes)" if self.paused else ""
            parent.border_subtitle = f"{log.received:,} received{skipped}{paused}"

    def relabel(self) -> None:
        """Account names arrived or changed: redraw the account column."""
        calls = {f"{epoch}:{event.seq}": event for epoch, event in self.noor.feed.calls}
        with self.app.batch_update():
            for key in self._shown:
                event = calls.get(key)
                if event is not None:
                    width = next(size for name, _, size in self._columns if name == "account")
                    self.update_cell(key, "account", truncate(self.account_label(event.account_id), width))
