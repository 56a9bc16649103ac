"""The SQLite ledger: one file under the data dir, the default and complete on its own.

Batches are committed in one hop to a dedicated writer thread with its own connection (as
datasette does with its write thread): one handoff per batch instead of one per statement.
Other writes go through an aiosqlite connection under the same lock, so SQLite sees one
writer at a time; reads use a connection of their own (WAL: readers never wait for it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import aiosqlite

from noor_daemon.ledger import schema
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import (
    INSERT_EVENT,
    RouteSample,
    UPSERT_ROUTE_HOURLY,
    UPSERT_USAGE_DAILY,
    UPSERT_USAGE_HOURLY,
    UsageEvent,
    daily_rows,
    rollup_rows,
)

log = logging.getLogger(__name__)
# aiosqlite's debug lines carry every statement's parameters (emails, mail bodies): never let them out,
# whatever level the daemon logs at.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

T = TypeVar("T")

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


class SqliteLedger(Ledger):
    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._batch_db: sqlite3.Connection | None = None
        """The usage writer's own connection, used only from `_batch_thread`."""
        self._batch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")

    # -- lifecycle -----------------------------------------------------------------

    async def _open_storage(self) -> None:
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

    async def _close_storage(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        if self._batch_db is not None:
            await self._in_batch_thread(self._batch_db.close)
        self._batch_thread.shutdown(wait=True)
        self._reader = self._writer = self._batch_db = None

    async def _commit_batch(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        async with self._lock:
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
                db.executemany(UPSERT_USAGE_DAILY, daily_rows(usage))
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

    async def open_reader(self) -> aiosqlite.Connection:
        reader = await aiosqlite.connect(self.path, isolation_level=None)
        await reader.executescript("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
        return reader

    async def close_reader(self, reader: aiosqlite.Connection) -> None:
        await reader.close()
