"""The live feed: metered calls as they commit, newest first. Ids and numbers only, never content.

The app's feed worker appends calls to a bounded `CallLog`; the `LiveFeed` table (a `RecordTable`:
filter, sort, Enter for the whole call) catches up with it a few times a second, diffing by call
(drop rows that aged out, add new ones, leave drawn rows alone) inside `batch_update`, so a burst
of traffic is one repaint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from rich.text import Text

from noor_daemon.client import CallEvent
from noor_tui.formatting import clock_time, duration_ms, money, si
from noor_tui.widgets.records import Column, Record, RecordTable

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


COLUMNS = [
    Column("time", "Time", 8),
    Column("account", "Account", 16, grow=1),
    Column("key", "Key", 14, drop=2),
    Column("model", "Model", 10),
    Column("status", "St", 3),
    Column("tokens", "Tok", 5, right=True),
    Column("latency", "Latency", 7, right=True),
    Column("ttft", "TTFT", 7, right=True, drop=1),
    Column("cost", "Cost", 9, right=True),
]
"""A narrow feed leaves out the key, then the time to first token (an email and the cost matter more)."""
COST_DECIMALS = 5
"""A call's cost in the feed's 9 columns: "<$0.00001" for less (an embedding's few tokens); its details say it all."""


def cost_cell(event: CallEvent, currency: str) -> Text | str:
    """The call's cost; "unpriced" (dim) for tokens of a model nobody priced, never a made-up $0."""
    if event.cost is not None:
        return money(event.cost, currency, max_decimals=COST_DECIMALS)
    return Text("unpriced" if event.total_tokens else "–", style="dim")


class LiveFeed(RecordTable):
    """Newest call on top, at most `limit` rows; `paused` freezes it while calls keep arriving.

    Filter it like any table (`status:4xx`, `account:ada`, `model:gpt`); Enter shows the call in full.
    """

    def __init__(self, *, limit: int = 200, account_label: Callable[[str | None], str] | None = None, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id or "feed", empty="No calls yet.", zebra=False)
        self.limit = limit
        self.account_label = account_label or (lambda account_id: account_id or "–")
        self.paused = False
        self._version_seen = -1
        self._made: dict[str, Record] = {}
        """Each call's record, made once (the table then skips rows it has drawn)."""

    @property
    def noor(self) -> NoorApp:
        return cast("NoorApp", self.app)

    def on_mount(self) -> None:
        self.catch_up(force=True)
        self.set_interval(0.25, self.catch_up)
        self.watch(self.app, "currency", self._currency_changed, init=False)

    def _currency_changed(self) -> None:
        self._made.clear()  # every cost is drawn again in the daemon's currency
        self.catch_up(force=True)

    def record(self, epoch: int, event: CallEvent) -> Record:
        key = f"{epoch}:{event.seq}"
        made = self._made.get(key)
        if made is not None:
            return made
        account = self.account_label(event.account_id)
        made = self._made[key] = Record(
            key,
            {
                "time": Text(clock_time(event.ts, self.noor.tz), style="dim"),
                "account": account,
                "key": event.key_prefix or Text("–", style="dim"),
                "model": event.model,
                "status": status_text(event.status),
                "tokens": si(event.total_tokens) if event.total_tokens else "–",
                "latency": duration_ms(event.latency_ms),
                "ttft": Text(duration_ms(event.ttft_ms) if event.ttft_ms is not None else "–", style="dim"),
                "cost": cost_cell(event, self.noor.currency),
            },
            item=event,
            sort={"time": (epoch, event.seq), "tokens": event.total_tokens, "latency": event.latency_ms,
                  "ttft": event.ttft_ms, "status": event.status, "cost": event.cost},
            fields={"provider": event.provider or "", "endpoint": event.endpoint, "account_id": event.account_id or "",
                    "seq": str(event.seq)},
            copy=str(event.seq),
        )
        return made

    def catch_up(self, force: bool = False) -> None:
        """Bring the rows in line with the app's call log (when on screen and not paused)."""
        if not self.is_mounted or (not force and not self.screen.is_current):
            return
        log = self.noor.feed
        if log.version == self._version_seen and not force:
            return
        self._caption(log)
        if self.paused and not force:
            return
        self._version_seen = log.version
        calls = list(log.calls)[-self.limit :]
        records = [self.record(epoch, event) for epoch, event in reversed(calls)]
        wanted = {r.key for r in records}
        for key in [k for k in self._made if k not in wanted]:
            del self._made[key]
        self.show(records)

    def _caption(self, log: CallLog) -> None:
        parent = self.parent
        if parent is not None and parent.has_class("panel"):
            skipped = f" · {log.dropped:,} skipped (reader too slow)" if log.dropped else ""
            paused = " · PAUSED (p resumes)" if self.paused else ""
            narrowed = f" · /{self.filter.text}: {len(self.shown)} shown" if self.filter else ""
            parent.border_subtitle = f"{log.received:,} received{skipped}{paused}{narrowed}"

    def _subtitle(self) -> None:
        self._caption(self.noor.feed)

    def relabel(self) -> None:
        """Account names arrived or changed: the account column is drawn again."""
        self._made.clear()
        self.catch_up(force=True)
