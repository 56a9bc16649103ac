"""The SQLite ledger: one file under the data dir, the default and complete on its own.

A batch of the usual size (a few to a few hundred events) is committed right on the event
loop: in WAL mode with `synchronous = NORMAL` a commit appends to the WAL without an fsync, so
it costs less than handing the batch to a thread and waking the loop again. That connection
never waits for a lock and never checkpoints: when another process holds the database it
gives way to the writer thread (whose connection waits up to `busy_timeout`), which also takes
big batches (a burst, a retry) and runs the WAL checkpoints, so no disk sync happens on the
loop. Other writes go through an aiosqlite connection under the same lock, so SQLite sees one
writer at a time; reads use a connection of their own (WAL: readers never wait for it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiosqlite

from noor_daemon.ledger import schema
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.fetched import WholeQueries
from noor_daemon.ledger.usage import (
    EVENT_FIELDS,
    INSERT_ATTEMPT,
    INSERT_EVENT,
    UPSERT_ROUTE_HOURLY,
    UPSERT_USAGE_DAILY,
    UPSERT_USAGE_HOURLY,
    RouteSample,
    UsageEvent,
    event_of,
    increments,
)

log = logging.getLogger(__name__)
# aiosqlite's debug lines carry every statement's parameters (emails, mail bodies): never let them out,
# whatever level the daemon logs at.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

T = TypeVar("T")
Unfolded = tuple[list[UsageEvent], list[RouteSample]]
"""Facts committed without their rollups, as the process that committed them kept them."""

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


_INLINE_PRAGMAS = """
PRAGMA busy_timeout = 0;
PRAGMA wal_autocheckpoint = 0;
"""
# The loop's connection fails at once on a lock (the writer thread waits instead) and leaves the
# WAL's checkpoints, which sync the disk, to the writer thread.


_FOLDED = "SELECT facts, folded_through FROM rollup_watermark"
_UNFOLDED_EVENTS = f"SELECT {EVENT_FIELDS} FROM usage_events WHERE id > ? ORDER BY id"
_UNFOLDED_ATTEMPTS = "SELECT ts, provider, model, status, latency_ms FROM route_attempts WHERE id > ? ORDER BY id"
_UNFOLDED_COUNTS = "SELECT (SELECT count(*) FROM usage_events WHERE id > ?), (SELECT count(*) FROM route_attempts WHERE id > ?)"
_ALL_FOLDED = """UPDATE rollup_watermark SET folded_through = CASE facts
    WHEN 'usage_events' THEN (SELECT coalesce(max(id), 0) FROM usage_events)
    ELSE (SELECT coalesce(max(id), 0) FROM route_attempts) END"""
_MARKS_BELOW_DELETED = """UPDATE rollup_watermark SET folded_through = min(folded_through, CASE facts
    WHEN 'usage_events' THEN (SELECT coalesce(max(id), 0) FROM usage_events)
    ELSE (SELECT coalesce(max(id), 0) FROM route_attempts) END)"""
# After deletions the marks come down to the highest id left: SQLite gives a new row max(id) + 1, which
# must read as not yet folded.


class SqliteLedger(Ledger):
    engine = "sqlite"
    INLINE_MAX = 256
    """Batches up to this many rows are committed on the loop; bigger ones in the writer thread."""
    CHECKPOINT_EVERY = 1024
    """Rows committed on the loop between two WAL checkpoints in the writer thread (~3 WAL frames a row: a
    WAL of ~12 MB at most). A checkpoint copies each page once however often it changed, and syncs the
    disk twice: one every 64 lone calls cost each of them 1.5 system calls."""
    FOLD_DELAY = 1.0
    """Seconds the rollups of facts committed on the loop wait to be folded with the next ones. Readers
    never see the wait: anything that reads or deletes usage folds first (`settle`). Each fold re-reads
    the pages the loop's commits changed and costs ~25 system calls: every 0.2 s, 1.7 a lone call."""
    FOLD_MAX = 4096
    """Facts committed without their rollups at most, before a fold is due at once."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._batch_db: sqlite3.Connection | None = None
        """The usage writer's own connection, used only from `_batch_thread`."""
        self._inline_db: sqlite3.Connection | None = None
        """The connection that commits small batches on the loop, under `_lock`."""
        self._batch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self._uncheckpointed = 0
        self._checkpointing = False
        self._unfolded = 0
        """Facts this process committed on the loop whose rollups are not written yet."""
        self._unfolded_events: list[UsageEvent] = []
        self._unfolded_samples: list[RouteSample] = []
        """Those facts themselves, so that the fold need not read them back (while no failed fold lost them)."""
        self._fold_timer: asyncio.TimerHandle | None = None
        self._fold_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def _open_storage(self) -> None:
        if not self.path.exists():
            # Created 0600 whatever the umask; SQLite gives the -wal and -shm files the database file's mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        await self._writer.executescript(_PRAGMAS)
        await schema.migrate(self._writer)
        self._batch_db = await self._in_batch_thread(self._open_batch_connection)
        # Big batches land all over usage_events' two indexes: a 16 MB page cache (SQLite's default
        # is 2 MB) keeps their upper levels in memory. The loop's connection appends near the end.
        await self._in_batch_thread(self._batch_db.execute, "PRAGMA cache_size = -16384")
        # Facts a crash left without their rollups (committed alone, killed before the fold) are folded now.
        await self._in_batch_thread(self._fold_sync, None)
        self._inline_db = self._open_batch_connection()
        self._inline_db.executescript(_INLINE_PRAGMAS)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.executescript("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
        self._reader.row_factory = aiosqlite.Row
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)

    async def _close_storage(self) -> None:
        if self._fold_timer is not None:
            self._fold_timer.cancel()
        if self._batch_db is not None:
            try:
                async with self._lock:
                    await self._in_batch_thread(self._fold_sync, self._take_unfolded(), self.pending_key_touches())
            except sqlite3.Error as exc:  # the facts are committed: the next open folds them
                log.error("ledger rollups not folded at close: %s", type(exc).__name__)
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        if self._inline_db is not None:
            self._inline_db.close()
        if self._batch_db is not None:
            await self._in_batch_thread(self._batch_db.close)
        self._batch_thread.shutdown(wait=True)
        self._reader = self._writer = self._batch_db = self._inline_db = None

    async def _append(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        async with self._lock:
            await self._in_batch_thread(self._commit_batch_sync, events, samples, [], self._take_unfolded())

    async def _commit_batch(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        async with self._lock:
            if len(events) + len(samples) <= self.INLINE_MAX and self._commit_inline(events, samples):
                return
            await self._in_batch_thread(
                self._commit_batch_sync, events, samples, self.pending_key_touches(), self._take_unfolded()
            )

    def _commit_alone(self, event: UsageEvent) -> bool:
        """One INSERT in autocommit mode: a transaction of its own without BEGIN and COMMIT as statements. The
        key's last use waits for the fold: its row's page would be a fourth page in this commit."""
        if self._lock.locked():
            return False
        db = self._inline_db
        assert db is not None
        try:
            db.execute(INSERT_EVENT, event.row())
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False  # nothing was written: the writer thread waits for the lock instead
            raise
        self._committed_inline([event], [])
        return True

    def _commit_inline(self, events: list[UsageEvent], samples: list[RouteSample]) -> bool:
        """Commit on the loop; False when another connection holds the database (the thread will wait for it)."""
        db = self._inline_db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            self.write_facts(db, events, samples, self.pending_key_touches())
        except sqlite3.OperationalError as exc:
            # A lock, at BEGIN or later (a WAL restart racing a checkpoint): rolled back, the thread retries.
            # Keys' last-use times drained for it are lost until their next call; the rows are not.
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        self._committed_inline(events, samples)
        return True

    def _committed_inline(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        """Facts committed on the loop without their rollups: kept for the fold, and a checkpoint now and then."""
        self._unfolded += len(events) + len(samples)
        self._unfolded_events += events
        self._unfolded_samples += samples
        self._fold_later()
        self._uncheckpointed += len(events) + len(samples)
        if self._uncheckpointed >= self.CHECKPOINT_EVERY and not self._checkpointing:
            self._uncheckpointed = 0
            self._checkpointing = True
            self._batch_thread.submit(self._checkpoint_passive)

    def _checkpoint_passive(self) -> None:
        """Copy committed WAL frames into the database file (writer thread; never blocks a writer)."""
        try:
            if self._batch_db is not None:
                self._batch_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", type(exc).__name__)
        finally:
            self._checkpointing = False

    def _take_unfolded(self) -> Unfolded | None:
        """The facts left for the fold, handed to it (under `_lock`): None when some were lost to a failed fold."""
        known: Unfolded | None = (self._unfolded_events, self._unfolded_samples)
        if len(self._unfolded_events) + len(self._unfolded_samples) != self._unfolded:
            known = None
        self._unfolded_events, self._unfolded_samples = [], []
        return known

    def _commit_batch_sync(
        self, events: list[UsageEvent], samples: list[RouteSample], touches: list[tuple[int, str]], known: Unfolded | None
    ) -> None:
        """The writer thread's commit: it waits up to `busy_timeout` for another process's lock."""
        db = self._batch_db
        assert db is not None
        # IMMEDIATE: the write lock first (waiting busy_timeout for another process), since the fold reads before
        # it writes, and a read transaction that must then write cannot wait for the lock.
        db.execute("BEGIN IMMEDIATE")
        self.write_batch(db, events, samples, touches, known)
        self._unfolded = 0  # the batch folded what the loop's commits had left

    def _fold_sync(self, known: Unfolded | None, touches: list[tuple[int, str]] = ()) -> None:
        """Fold every fact not yet in the rollups, and write the keys' last use drained for it (writer thread,
        under `_lock` or before the writer starts)."""
        db = self._batch_db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        self.write_batch(db, [], [], list(touches), known)
        self._unfolded = 0

    def _fold_later(self) -> None:
        if self._unfolded >= self.FOLD_MAX:
            self._fold_soon()
        elif self._fold_timer is None:
            self._fold_timer = asyncio.get_running_loop().call_later(self.FOLD_DELAY, self._fold_soon)

    def _fold_soon(self) -> None:
        if self._fold_timer is not None:
            self._fold_timer.cancel()
            self._fold_timer = None
        if self._fold_task is None or self._fold_task.done():
            self._fold_task = asyncio.get_running_loop().create_task(self.settle(), name="ledger-fold")

    async def settle(self) -> None:
        """Write the rollups of every fact committed so far: readers and deleters call this first, so the
        derived tables they see hold every committed call (and every listener has heard of it)."""
        self.publish()
        if not self._unfolded:
            return
        async with self._lock:
            if self._unfolded:
                try:
                    await self._in_batch_thread(self._fold_sync, self._take_unfolded(), self.pending_key_touches())
                except sqlite3.Error as exc:  # a full disk: the facts are safe; folded by a later settle or at open
                    log.error("ledger rollups could not be folded: %s", type(exc).__name__)
                    raise

    @staticmethod
    def write_batch(
        db: sqlite3.Connection,
        events: list[UsageEvent],
        samples: list[RouteSample],
        touches: list[tuple[int, str]],
        known: Unfolded | None = None,
    ) -> None:
        """In the transaction just begun: the facts; what they, and the facts committed before without their
        rollups (`write_facts`), add to every derived table (`usage.increments`); the marks of what is folded;
        the keys' last use; then COMMIT. The one writer of the rollups on SQLite.

        `known`: the facts this process committed without rollups, as it kept them. They are used instead of
        reading the facts back when the database holds as many unfolded ones (nobody else wrote or folded since)."""
        try:
            marks = dict(db.execute(_FOLDED).fetchall())
            since = (marks["usage_events"], marks["route_attempts"])
            if known is not None and db.execute(_UNFOLDED_COUNTS, since).fetchone() == (len(known[0]), len(known[1])):
                earlier_events, earlier_samples = known
            else:
                earlier_events = [event_of(r) for r in db.execute(_UNFOLDED_EVENTS, since[:1])]
                earlier_samples = [RouteSample(*r) for r in db.execute(_UNFOLDED_ATTEMPTS, since[1:])]
            added = increments(earlier_events + events, earlier_samples + samples)
            if events:
                db.executemany(INSERT_EVENT, [e.row() for e in events])
            if samples:
                db.executemany(INSERT_ATTEMPT, [s.row() for s in samples])
            if added.hourly:
                db.executemany(UPSERT_USAGE_HOURLY, added.hourly)
                db.executemany(UPSERT_USAGE_DAILY, added.daily)
            if added.routes:
                db.executemany(UPSERT_ROUTE_HOURLY, added.routes)
            if events or samples or earlier_events or earlier_samples:
                db.execute(_ALL_FOLDED)
            if touches:
                db.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?", touches)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (a full disk does)
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def write_facts(
        db: sqlite3.Connection, events: list[UsageEvent], samples: list[RouteSample], touches: list[tuple[int, str]]
    ) -> None:
        """In the transaction just begun: the facts and the keys' last use, then COMMIT; their rollups are
        written by the next `write_batch` (a fold). A lone call's commit is half as long this way."""
        try:
            if events:
                db.executemany(INSERT_EVENT, [e.row() for e in events])
            if samples:
                db.executemany(INSERT_ATTEMPT, [s.row() for s in samples])
            if touches:
                db.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?", touches)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
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
            if self._inline_db is not None and "busy_timeout" not in statement:  # the loop's connection never waits
                self._inline_db.execute(statement)

    # -- other writes and reads ----------------------------------------------------

    async def write(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `fn` in one transaction on the writer connection, between batches. The rollups hold every
        committed fact when it starts (it may read or delete usage), and the marks follow its deletions."""
        async with self._lock:
            if self._unfolded:
                await self._in_batch_thread(self._fold_sync, self._take_unfolded(), self.pending_key_touches())
            db = self._writer
            assert db is not None
            try:
                await db.execute("BEGIN IMMEDIATE")
                result = await fn(db)
                await db.execute(_MARKS_BELOW_DELETED)
            except BaseException:
                await _roll_back(db)
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
    def reader(self) -> WholeQueries:
        """The shared read connection; each query runs whole (`ledger/fetched.py`), so none sees another's snapshot."""
        assert self._reader is not None, "ledger is not open"
        return WholeQueries(self._reader)

    async def open_reader(self) -> aiosqlite.Connection:
        await self.settle()
        reader = await aiosqlite.connect(self.path, isolation_level=None)
        await reader.executescript("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
        return reader

    async def close_reader(self, reader: aiosqlite.Connection) -> None:
        await reader.close()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        reader = await self.open_reader()
        try:
            await reader.execute("BEGIN")  # WAL: the first read fixes the snapshot every later read sees
            yield reader
        finally:
            if reader.in_transaction:
                await reader.execute("COMMIT")
            await reader.close()


async def _roll_back(db: aiosqlite.Connection) -> None:
    """ROLLBACK whatever the failure or cancellation was. A cancellation that hits while BEGIN is awaited
    leaves BEGIN to run in aiosqlite's thread anyway; the ROLLBACK queued behind it ends that transaction,
    which would otherwise hold the write lock until the connection closes."""
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:  # BEGIN itself failed: no transaction to end
        pass
