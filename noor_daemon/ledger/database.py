"""The ledger's connections: writers serialised by one lock, with group commit, and a reader.

Usage events are not written one by one: callers enqueue an event and await the commit
of the batch it joined, so a thousand concurrent calls cost a handful of commits while
each caller still knows its row is durable. A batch is committed in one hop to a
dedicated writer thread (as datasette does with its write thread): one handoff per batch
instead of one per statement. Other writes (accounts, keys, privacy, mail) go through
`write(fn)` on an aiosqlite connection, under the same lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from noor_daemon.ledger import schema
from noor_daemon.ledger.usage import (
    INSERT_EVENT,
    RouteSample,
    UPSERT_ROUTE_HOURLY,
    UPSERT_USAGE_HOURLY,
    UsageEvent,
    rollup_rows,
)

log = logging.getLogger(__name__)
# aiosqlite's debug lines carry every statement's parameters (emails, mail bodies): never let them out,
# whatever level the daemon logs at.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

T = TypeVar("T")
CommitListener = Callable[[list[UsageEvent]], None]

_PRAGMAS = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA busy_timeout = 5000;
PRAGMA temp_store = MEMORY;
PRAGMA secure_delete = ON;
"""
# secure_delete: a deleted row's bytes are overwritten, so an erased account leaves nothing in
# the database file's free space (the WAL is truncated by `checkpoint` after an erasure).


def _consume_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # a caller that stopped waiting must not trigger "never retrieved"


class LedgerUnavailable(Exception):
    """The ledger cannot commit (disk full, database locked); calls must not go unmetered."""


class Ledger:
    MAX_BATCH = 2048
    COMMIT_DELAY = 0.0005
    COMMIT_SIBLINGS = 4
    MAX_UNWRITTEN = 1_000_000
    RETRY_SECONDS = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._batch_db: sqlite3.Connection | None = None
        """The usage writer's own connection, used only from `_batch_thread`."""
        self._batch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[tuple[UsageEvent | RouteSample, asyncio.Future[None] | None]] = asyncio.Queue()
        self._unwritten: list[UsageEvent] = []
        """Events whose commit failed; retried until the disk has room or the lock is gone."""
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[CommitListener] = []
        self.pending_key_touches: Callable[[], list[tuple[int, str]]] = lambda: []
        self.calls_in_flight: Callable[[], int] = lambda: 0
        """How many proxied calls are under way (set by the app): the group-commit delay's cue."""
        self.batches_committed = 0
        self.events_committed = 0

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        new = not self.path.exists()
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        if new:
            os.chmod(self.path, 0o600)
        await self._writer.executescript(_PRAGMAS)
        await schema.migrate(self._writer)
        self._batch_db = await self._in_batch_thread(self._open_batch_connection)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.executescript("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
        self._reader.row_factory = aiosqlite.Row
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)
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
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        if self._batch_db is not None:
            await self._in_batch_thread(self._batch_db.close)
        self._batch_thread.shutdown(wait=True)
        self._reader = self._writer = self._batch_db = None

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
                    async with self._lock:
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
        await self._in_batch_thread(self._commit_batch_sync, events, samples, self.pending_key_touches())

    def _commit_batch_sync(self, events: list[UsageEvent], samples: list[RouteSample], touches: list[tuple[int, str]]) -> None:
        """One transaction: the rows, their rollups, the keys' last use. Runs in the writer thread."""
        db = self._batch_db
        assert db is not None
        usage, routes = rollup_rows(events, samples)
        db.execute("BEGIN")
        try:
            if events:
                db.executemany(INSERT_EVENT, [e.row() for e in events])
            if usage:
                db.executemany(UPSERT_USAGE_HOURLY, usage)
            if routes:
                db.executemany(UPSERT_ROUTE_HOURLY, routes)
            if touches:
                db.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?", touches)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _open_batch_connection(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.executescript(_PRAGMAS)
        return db

    async def _in_batch_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._batch_thread, fn, *args)

    async def pragma(self, statement: str) -> None:
        """Apply a PRAGMA to both writer connections (limits such as busy_timeout, max_page_count)."""
        async with self._lock:
            assert self._writer is not None and self._batch_db is not None
            await self._writer.execute(statement)
            await self._in_batch_thread(self._batch_db.execute, statement)

    # -- other writes and reads ----------------------------------------------------

    async def write(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `fn` in one transaction on the writer connection, between batches."""
        async with self._lock:
            db = self._writer
            assert db is not None
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await fn(db)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
            return result

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate it to zero bytes.

        After an erasure the WAL still holds old page images; this removes them. Returns
        False when a reader kept the checkpoint from completing (call again later).
        """
        async with self._lock:
            db = self._writer
            assert db is not None
            async with db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                busy, _, _ = await cursor.fetchone()
            return busy == 0

    @property
    def reader(self) -> aiosqlite.Connection:
        assert self._reader is not None, "ledger is not open"
        return self._reader

    async def fetchall(self, sql: str, params: tuple | dict = ()) -> list[aiosqlite.Row]:
        async with self.reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: tuple | dict = ()) -> aiosqlite.Row | None:
        async with self.reader.execute(sql, params) as cursor:
            return await cursor.fetchone()
