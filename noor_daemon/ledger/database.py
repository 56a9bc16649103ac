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


class Ledger:
    """Group commit over a storage engine (subclasses supply the engine)."""

    engine = "none"
    MAX_BATCH = 2048
    COMMIT_DELAY = 0.0005
    COMMIT_SIBLINGS = 4
    MAX_UNWRITTEN = 1_000_000
    RETRY_SECONDS = 1.0

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        """Serialises this daemon's `write` transactions (and, on SQLite, the batch commits)."""
        self._queue: asyncio.Queue[tuple[UsageEvent | RouteSample, asyncio.Future[None] | None]] = asyncio.Queue()
        self._unwritten: list[UsageEvent] = []
        """Events whose commit failed; retried until the disk has room or the lock is gone."""
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[CommitListener] = []
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
            await self._queue.join()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._close_storage()

    async def _open_storage(self) -> None:
        raise NotImplementedError

    async def _close_storage(self) -> None:
        raise NotImplementedError

    # -- usage events ----------------------------------------------------------------

    def add_listener(self, listener: CommitListener) -> None:
        """Call `listener` with every batch once it is committed (quotas, live feed)."""
        self._listeners.append(listener)

    async def record(self, event: UsageEvent) -> None:
        """Enqueue `event` and return once the batch holding it is committed."""
        await self.enqueue(event)

    def enqueue(self, event: UsageEvent) -> asyncio.Future[None]:
        """Enqueue `event` without waiting; the future resolves at its batch's commit."""
        done = asyncio.get_running_loop().create_future()
        done.add_done_callback(_consume_exception)
        self._queue.put_nowait((event, done))
        return done

    def note_attempt(self, sample: RouteSample) -> None:
        """Count a failed upstream attempt in the route rollups, without a usage row or a wait."""
        self._queue.put_nowait((sample, None))

    @property
    def healthy(self) -> bool:
        """False from a failed commit until a retry succeeds (disk full, database locked)."""
        return not self._unwritten

    async def _next_batch(self) -> list[tuple[UsageEvent | RouteSample, asyncio.Future[None] | None]]:
        if self._unwritten:
            # Unhealthy: wake at least once a second to retry what could not be written.
            try:
                first = await asyncio.wait_for(self._queue.get(), self.RETRY_SECONDS)
            except TimeoutError:
                return []
        else:
            first = await self._queue.get()
        if self.calls_in_flight() > self._queue.qsize() + self.COMMIT_SIBLINGS:
            # Like PostgreSQL's commit_delay: when other calls are about to finish, wait a
            # moment so they share this commit instead of each paying for one of their own.
            await asyncio.sleep(self.COMMIT_DELAY)
        batch = [first]
        while len(batch) < self.MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _run_writer(self) -> None:
        while True:
            batch = await self._next_batch()
            retrying = self._unwritten
            events = retrying + [item for item, _ in batch if isinstance(item, UsageEvent)]
            samples = [item for item, _ in batch if isinstance(item, RouteSample)]
            try:
                if events or samples:
                    await self._commit_batch(events, samples)
            except Exception as exc:  # disk full, locked: every waiter learns it, no row is lost
                log.error("ledger commit failed for %d events: %s", len(events), type(exc).__name__)
                self._unwritten = events[-self.MAX_UNWRITTEN :]
                failure = LedgerUnavailable(f"the usage ledger cannot be written ({type(exc).__name__})")
                for _, done in batch:
                    if done is not None and not done.done():
                        done.set_exception(failure)
            else:
                if retrying:
                    log.warning("ledger writable again; committed %d delayed events", len(retrying))
                self._unwritten = []
                self.batches_committed += 1
                self.events_committed += len(events)
                for _, done in batch:
                    if done is not None and not done.done():
                        done.set_result(None)
                for listener in self._listeners:
                    try:
                        listener(events)
                    except Exception:
                        log.exception("commit listener failed")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit_batch(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        """One transaction: the rows, their rollups, the keys' last use."""
        raise NotImplementedError

    # -- other writes and reads (the engine's) -------------------------------------

    async def write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run `fn(db)` in one transaction; `db.execute(sql, params)` takes SQLite's SQL on both engines."""
        raise NotImplementedError

    @property
    def reader(self) -> Any:
        """A read connection: `async with ledger.reader.execute(sql, params) as cursor`."""
        raise NotImplementedError

    async def fetchall(self, sql: str, params: tuple | list | dict = ()) -> list[Any]:
        async with self.reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: tuple | list | dict = ()) -> Any | None:
        async with self.reader.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def open_reader(self) -> Any:
        """A read connection of its own, for long scans that should not queue behind the dashboard's reads."""
        return self.reader

    async def close_reader(self, reader: Any) -> None:
        pass

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
            except Exception:
                log.exception("change listener failed for %s", kind)

    def exclusive(self, job: str) -> Any:
        """An async context manager yielding True when this daemon should run `job` now (several daemons:
        only one at a time; one daemon: always)."""
        return _Always()


class _Always:
    async def __aenter__(self) -> bool:
        return True

    async def __aexit__(self, *exc: object) -> None:
        return None
