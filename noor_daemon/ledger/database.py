"""The ledger: usage events committed in groups, and the storage engine's connections behind it.

Usage events are not written one by one: callers enqueue an event and await the commit
of the batch it joined, so a thousand concurrent calls cost a handful of commits while
each caller still knows its row is durable. That logic is here, once; the engines are
`SqliteLedger` (the default, one file under the data dir) and `PostgresLedger` (several
daemons sharing one database), each committing a batch in one transaction. Other writes
(accounts, keys, privacy, mail) go through `write(fn)`, one transaction per call, with
SQLite's statements (`ledger/dialect.py` translates them for PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from noor_daemon.ledger.usage import RouteSample, UsageEvent

log = logging.getLogger(__name__)

T = TypeVar("T")
CommitListener = Callable[[list[UsageEvent]], None]
ChangeListener = Callable[[str, str], Awaitable[None]]
"""(kind, id) of an account or key that another daemon changed."""


def _consume_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # a caller that stopped waiting must not trigger "never retrieved"


class LedgerUnavailable(Exception):
    """The ledger cannot commit (disk full, database locked); calls must not go unmetered."""


class _BatchDone(asyncio.Future):
    """The commit of a batch, awaited by all its callers. It cannot be cancelled: a caller cancelled
    while waiting (a client that left) is cancelled once the commit is done, and the others are not."""

    def cancel(self, msg: object = None) -> bool:
        return False


class _Batch:
    """Events and route samples committed together, and the one future their callers await."""

    __slots__ = ("events", "samples", "done")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[UsageEvent] = []
        self.samples: list[RouteSample] = []
        self.done: asyncio.Future[None] = _BatchDone(loop=loop)
        self.done.add_done_callback(_consume_exception)

    @property
    def size(self) -> int:
        return len(self.events) + len(self.samples)


class Ledger:
    """Group commit over a storage engine (subclasses supply the engine)."""

    engine = "none"
    MAX_BATCH = 8192
    """Events per transaction at most. Calls in flight make batches of tens; a burst (a backlog after an
    outage, a flood) fills them, and a big batch writes each index page it touches once: 8,192 commits
    ~1.5x the events per second of 2,048 (`benchmarks.micro`)."""
    COMMIT_DELAY = 0.0005
    COMMIT_SIBLINGS = 4
    PUBLISH_DELAY = 0.1
    """Seconds at most before the listeners that are not `immediate` hear of a call committed alone. Told
    in batches, they cost a lone call a list append instead of an update of every view; whoever reads
    what they keep calls `publish` first, so no reader sees the delay."""
    MAX_UNWRITTEN = 1_000_000
    RETRY_SECONDS = 1.0

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        """Serialises this daemon's `write` transactions (and, on SQLite, the batch commits)."""
        self._batches: deque[_Batch] = deque()
        """Batches waiting for the writer, oldest first; events join the newest."""
        self._wakeup = asyncio.Event()
        self._committing = False
        self._unwritten: list[UsageEvent] = []
        """Events whose commit failed; retried until the disk has room or the lock is gone."""
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[CommitListener] = []
        self._immediate_listeners: list[CommitListener] = []
        self._unpublished: list[UsageEvent] = []
        """Calls committed alone that the listeners which are not immediate have not heard of yet."""
        self._publish_timer: asyncio.TimerHandle | None = None
        self._change_listeners: list[ChangeListener] = []
        self.pending_key_touches: Callable[[], list[tuple[int, str]]] = lambda: []
        self.calls_in_flight: Callable[[], int] = lambda: 0
        """How many proxied calls are under way (set by the app): the group-commit delay's cue."""
        self.batches_committed = 0
        self.events_committed = 0

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        await self._open_storage()
        self._task = asyncio.create_task(self._run_writer(), name="ledger-writer")

    async def close(self) -> None:
        """Commit everything queued, then close. Nothing enqueued is dropped."""
        if self._task is not None:
            while self._batches or self._committing:  # the writer drains what is queued
                await asyncio.sleep(0.005)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.publish()
        await self._close_storage()

    async def _open_storage(self) -> None:
        raise NotImplementedError

    async def _close_storage(self) -> None:
        raise NotImplementedError

    # -- usage events ----------------------------------------------------------------

    def add_listener(self, listener: CommitListener, *, immediate: bool = False) -> None:
        """Call `listener` with every committed call: at the commit itself when `immediate` (what must count
        a call before the next one is admitted: quotas, budgets), else with its batch, or within
        `PUBLISH_DELAY` of a call committed alone (the live views, /metrics, alerts, telemetry)."""
        (self._immediate_listeners if immediate else self._listeners).append(listener)

    def publish(self) -> None:
        """Tell the listeners that are not immediate of every call committed so far. Readers of what they
        keep (the live views, /metrics) call this first; the ledger's own readers do it in `settle`."""
        if self._publish_timer is not None:
            self._publish_timer.cancel()
            self._publish_timer = None
        if self._unpublished:
            events, self._unpublished = self._unpublished, []
            self._tell(self._listeners, events)

    async def record(self, event: UsageEvent) -> None:
        """Return once `event` is committed: alone, right here, when it is the only call under way and
        the writer is idle (one call at a time gains nothing from waiting for a batch, and two task
        switches less is a tenth of a millisecond off its latency); else with the batch it joins."""
        if self.calls_in_flight() == 1 and not self._batches and not self._committing and not self._unwritten:
            try:
                done = self._commit_alone(event)
            except Exception as exc:
                self._failed([event], None, exc)
                self._wakeup.set()  # the writer retries it from now on
                raise LedgerUnavailable(f"the usage ledger cannot be written ({type(exc).__name__})") from None
            if done:
                self._committed([event], None, [], alone=True)
                return
        await self.enqueue(event)

    def _commit_alone(self, event: UsageEvent) -> bool:
        """Commit one event without yielding to the loop; False when the engine cannot do that now."""
        return False

    def enqueue(self, event: UsageEvent) -> asyncio.Future[None]:
        """Enqueue `event` without waiting; the future resolves at its batch's commit. It is the batch's
        future, shared by its events: a burst costs a list append per event, not a future."""
        batch = self._open_batch()
        batch.events.append(event)
        return batch.done

    def note_attempt(self, sample: RouteSample) -> None:
        """Count a failed upstream attempt in the route rollups, without a usage row or a wait."""
        self._open_batch().samples.append(sample)

    @property
    def healthy(self) -> bool:
        """False from a failed commit until a retry succeeds (disk full, database locked)."""
        return not self._unwritten

    def _open_batch(self) -> _Batch:
        """The batch new events join: the newest one, until it is full or the writer has taken it."""
        if not self._batches or self._batches[-1].size >= self.MAX_BATCH:
            self._batches.append(_Batch(asyncio.get_running_loop()))
            self._wakeup.set()
        return self._batches[-1]

    def _queued(self) -> int:
        return sum(batch.size for batch in self._batches)

    async def _next_batch(self) -> _Batch | None:
        """The batch to commit next, or None when the writer woke only to retry unwritten events."""
        if not self._batches:
            self._wakeup.clear()
            if self._unwritten:
                # Unhealthy: wake at least once a second to retry what could not be written.
                try:
                    async with asyncio.timeout(self.RETRY_SECONDS):
                        await self._wakeup.wait()
                except TimeoutError:
                    return None
            else:
                await self._wakeup.wait()
            if not self._batches:
                return None
        if self.calls_in_flight() > self._queued() + self.COMMIT_SIBLINGS:
            # Like PostgreSQL's commit_delay: when other calls are about to finish, wait a
            # moment so they share this commit instead of each paying for one of their own.
            await asyncio.sleep(self.COMMIT_DELAY)
        return self._batches.popleft()  # from here on, new events open the next batch

    async def _run_writer(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None and not self._unwritten:
                continue
            self._committing = True
            retrying = self._unwritten
            events = retrying + batch.events if batch is not None else retrying
            samples = batch.samples if batch is not None else []
            try:
                if events or samples:
                    await self._commit_batch(events, samples)
            except Exception as exc:  # disk full, locked: every waiter learns it, no row is lost
                self._failed(events, batch, exc)
            else:
                self._committed(events, batch, retrying)
            finally:
                self._committing = False

    def _failed(self, events: list[UsageEvent], batch: _Batch | None, exc: Exception) -> None:
        log.error("ledger commit failed for %d events: %s", len(events), type(exc).__name__)
        self._unwritten = events[-self.MAX_UNWRITTEN :]
        if batch is not None and not batch.done.done():
            batch.done.set_exception(LedgerUnavailable(f"the usage ledger cannot be written ({type(exc).__name__})"))

    def _committed(
        self, events: list[UsageEvent], batch: _Batch | None, retried: list[UsageEvent], *, alone: bool = False
    ) -> None:
        if retried:
            log.warning("ledger writable again; committed %d delayed events", len(retried))
        self._unwritten = []
        self.batches_committed += 1
        self.events_committed += len(events)
        if batch is not None and not batch.done.done():
            batch.done.set_result(None)
        self._tell(self._immediate_listeners, events)
        if alone:
            self._unpublished += events
            if self._publish_timer is None:
                self._publish_timer = asyncio.get_running_loop().call_later(self.PUBLISH_DELAY, self.publish)
        elif self._unpublished:  # calls committed alone before this batch are told first, in one list
            self._unpublished += events
            self.publish()
        else:
            self._tell(self._listeners, events)

    @staticmethod
    def _tell(listeners: list[CommitListener], events: list[UsageEvent]) -> None:
        for listener in listeners:
            try:
                listener(events)
            except Exception:
                log.exception("commit listener failed")

    async def _commit_batch(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        """One transaction: the rows, their rollups, the keys' last use."""
        raise NotImplementedError

    async def append_usage(self, events: list[UsageEvent], samples: list[RouteSample] = ()) -> None:
        """Write usage in bulk through the same writer as the batch commit (the demo's and the benchmarks'
        history, the tests' backfills), in one transaction per `MAX_BATCH`; listeners hear of it as of a
        commit, so the quotas and the live views count it too."""
        events, samples = list(events), list(samples)
        for low in range(0, max(len(events), len(samples)), self.MAX_BATCH):
            part, attempts = events[low : low + self.MAX_BATCH], samples[low : low + self.MAX_BATCH]
            await self._append(part, attempts)
            self._committed(part, None, [])

    async def _append(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        raise NotImplementedError

    # -- other writes and reads (the engine's) -------------------------------------

    async def write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run `fn(db)` in one transaction; `db.execute(sql, params)` takes SQLite's SQL on both engines."""
        raise NotImplementedError

    @property
    def reader(self) -> Any:
        """A read connection: `async with ledger.reader.execute(sql, params) as cursor` (after `await settle()`
        when it reads the derived tables)."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Make every committed fact visible in the derived tables, and to every listener, before a read. An
        engine that writes a batch's rollups with it (PostgreSQL) has only the listeners to tell; SQLite may
        have left a lone call's rollups for later."""
        self.publish()

    async def fetchall(self, sql: str, params: tuple | list | dict = ()) -> list[Any]:
        await self.settle()
        async with self.reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: tuple | list | dict = ()) -> Any | None:
        await self.settle()
        async with self.reader.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def open_reader(self) -> Any:
        """A read connection of its own, for long scans that should not queue behind the dashboard's reads."""
        return self.reader

    async def close_reader(self, reader: Any) -> None:
        pass

    def snapshot(self) -> Any:
        """An async context manager yielding a read connection whose reads all see one moment of the ledger
        (`noor ledger verify` reads every table while a daemon may be committing)."""
        raise NotImplementedError

    async def checkpoint(self) -> bool:
        """Make deleted rows unrecoverable from the engine's logs where it can (SQLite's WAL); True when done."""
        return True

    # -- several daemons -------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(kind, id)` when another daemon on the same database changed an account or key."""
        self._change_listeners.append(listener)

    async def announce(self, db: Any, kind: str, ident: str) -> None:
        """Tell the other daemons, inside `write`'s transaction, that `kind` `ident` changed (one daemon: nothing to tell)."""

    async def _changed(self, kind: str, ident: str) -> None:
        for listener in self._change_listeners:
            try:
                await listener(kind, ident)
            except Exception as exc:  # its message could quote a row: the type only
                log.error("change listener failed for %s: %s", kind, type(exc).__name__)

    def exclusive(self, job: str) -> Any:
        """An async context manager yielding True when this daemon should run `job` now (several daemons:
        only one at a time; one daemon: always)."""
        return _Always()


class _Always:
    async def __aenter__(self) -> bool:
        return True

    async def __aexit__(self, *exc: object) -> None:
        return None
