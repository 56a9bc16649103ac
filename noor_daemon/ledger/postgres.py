"""The PostgreSQL ledger: several daemons sharing one database through asyncpg.

The same schema and migrations as SQLite (translated by `ledger/dialect.py`, applied under
an advisory lock so daemons starting together migrate once), usage batches written with
COPY and their rollups upserted in key order (two daemons' batches never deadlock), and a
LISTEN connection that tells this daemon when another one changed an account or a key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from noor_daemon.ledger import dialect, schema
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.fetched import FetchedCursor, Query
from noor_daemon.ledger.usage import (
    ATTEMPT_COLUMNS,
    EVENT_COLUMNS,
    UPSERT_ROUTE_HOURLY,
    UPSERT_USAGE_DAILY,
    UPSERT_USAGE_HOURLY,
    RouteSample,
    UsageEvent,
    increments,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "noor_changes"
_MIGRATION_LOCK = 7_403_311_001  # pg_advisory_xact_lock key: one daemon migrates at a time


def _numeric(text: str) -> int | float:
    """sum() of a BIGINT column is NUMERIC in PostgreSQL; the code (and JSON) want numbers."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("numeric", encoder=str, decoder=_numeric, schema="pg_catalog", format="text")


def _params(params: Sequence[Any] | dict) -> Sequence[Any]:
    if isinstance(params, dict):
        raise TypeError("named parameters are not used with the PostgreSQL ledger")
    return params


async def _run(conn: asyncpg.Connection, sql: str, params: Sequence[Any] | dict) -> FetchedCursor:
    text, returns_rows, for_lastrowid = dialect.statement(sql)
    args = _params(params)
    if for_lastrowid:
        rows = await conn.fetch(text, *args)
        return FetchedCursor([], len(rows), rows[0][0] if rows else None)
    if returns_rows:
        rows = await conn.fetch(text, *args)
        return FetchedCursor(rows, len(rows), None)
    status = await conn.execute(text, *args)
    count = status.rsplit(" ", 1)[-1]
    return FetchedCursor([], int(count) if count.isdigit() else -1, None)


class PgConnection:
    """One connection in a `write` transaction, speaking SQLite's SQL."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> Query:
        return Query(_run(self.raw, sql, params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.raw.executemany(dialect.statement(sql)[0], list(rows))


class PgPoolReader:
    """Reads, each on whichever pooled connection is free."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> Query:
        return Query(self._run(sql, params))

    async def _run(self, sql: str, params: Sequence[Any] | dict) -> FetchedCursor:
        async with self.pool.acquire() as conn:
            return await _run(conn, sql, params)


class PostgresLedger(Ledger):
    engine = "postgresql"
    RECONNECT_SECONDS = 1.0
    CLOSE_SECONDS = 10.0

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self.pool_size = pool_size
        self.instance = f"{os.getpid()}-{secrets.token_hex(4)}"
        """Names this daemon in its own notifications, so it skips them."""
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "ledger is not open"
        return self._pool

    # -- lifecycle ------------------------------------------------------------------

    async def _open_storage(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.url, min_size=2, max_size=self.pool_size, init=_init_connection, command_timeout=60
        )
        async with self._pool.acquire() as conn:
            await migrate(conn)
        await self._listen()

    async def _close_storage(self) -> None:
        self._closing = True
        if self._listen_task is not None:
            self._listen_task.cancel()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
        if self._pool is not None:
            try:  # a connection some task still holds must not keep the daemon from stopping
                await asyncio.wait_for(self._pool.close(), self.CLOSE_SECONDS)
            except TimeoutError:
                log.warning("PostgreSQL connections still busy at shutdown; closing them")
                self._pool.terminate()
        self._pool = self._listener = None

    # -- usage batches ----------------------------------------------------------------

    async def _commit_batch(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        touches = sorted(self.pending_key_touches(), key=lambda t: t[1])
        async with self.pool.acquire() as conn, conn.transaction():
            await self._write_usage(conn, events, samples)
            if touches:
                await conn.executemany("UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $1) WHERE id = $2", touches)

    async def _append(self, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._write_usage(conn, events, samples)

    @staticmethod
    async def _write_usage(conn: asyncpg.Connection, events: list[UsageEvent], samples: list[RouteSample]) -> None:
        """In the transaction: the facts by COPY, and what they add to every derived table (`usage.increments`,
        sorted by key, so concurrent daemons lock the same rollup rows in the same order). The one writer of
        usage on PostgreSQL."""
        added = increments(events, samples)
        if events:
            await conn.copy_records_to_table("usage_events", records=[e.row() for e in events], columns=EVENT_COLUMNS)
        if samples:
            await conn.copy_records_to_table("route_attempts", records=[s.row() for s in samples], columns=ATTEMPT_COLUMNS)
        if added.hourly:
            await conn.executemany(dialect.statement(UPSERT_USAGE_HOURLY)[0], added.hourly)
            await conn.executemany(dialect.statement(UPSERT_USAGE_DAILY)[0], added.daily)
        if added.routes:
            await conn.executemany(dialect.statement(UPSERT_ROUTE_HOURLY)[0], added.routes)

    # -- other writes and reads -----------------------------------------------------------

    async def write(self, fn: Callable[[PgConnection], Awaitable[T]]) -> T:
        async with self._lock, self.pool.acquire() as conn, conn.transaction():
            return await fn(PgConnection(conn))

    @property
    def reader(self) -> PgPoolReader:
        return PgPoolReader(self.pool)

    async def pragma(self, statement: str) -> None:
        raise NotImplementedError("PRAGMA is SQLite's")

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PgConnection]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield PgConnection(conn)

    # -- several daemons --------------------------------------------------------------------

    async def announce(self, db: PgConnection, kind: str, ident: str) -> None:
        # Delivered to the listeners when (and only if) the transaction commits.
        await db.raw.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{self.instance}|{kind}|{ident}")

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(self.url)
        await self._listener.add_listener(CHANNEL, self._on_notification)
        self._listener.add_termination_listener(self._on_listener_lost)

    def _on_notification(self, conn: object, pid: int, channel: str, payload: str) -> None:
        instance, kind, ident = payload.split("|", 2)
        if instance != self.instance:
            asyncio.get_running_loop().create_task(self._changed(kind, ident))

    def _on_listener_lost(self, conn: object) -> None:
        if not self._closing and (self._listen_task is None or self._listen_task.done()):
            self._listen_task = asyncio.get_running_loop().create_task(self._relisten(), name="ledger-relisten")

    async def _relisten(self) -> None:
        """Reconnect, then reload everything: changes made while deaf were not heard."""
        log.warning("lost the PostgreSQL change feed; reconnecting")
        while not self._closing:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("PostgreSQL change feed still down (%s)", type(exc).__name__)
                await asyncio.sleep(self.RECONNECT_SECONDS)
                continue
            log.warning("PostgreSQL change feed back")
            await self._changed("all", "")
            return

    def exclusive(self, job: str) -> "_AdvisoryLock":
        return _AdvisoryLock(self.pool, job)


class _AdvisoryLock:
    """Held by one daemon at a time: background jobs (mail, retention, billing) run once, not once per daemon."""

    def __init__(self, pool: asyncpg.Pool, job: str) -> None:
        self.pool, self.job = pool, job
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> bool:
        conn = await self.pool.acquire()
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"noor:{self.job}")
        except BaseException:  # cancelled at shutdown, or the server went away: the connection goes back
            await self.pool.release(conn)
            raise
        if not got:
            await self.pool.release(conn)
            return False
        self._conn = conn
        return True

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            try:
                await self._conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"noor:{self.job}")
            finally:
                await self.pool.release(self._conn)
                self._conn = None


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the database up to `schema.SCHEMA_VERSION` (the SQLite migrations, translated)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS noor_schema (version BIGINT NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM noor_schema") or 0
        if current > schema.SCHEMA_VERSION:
            raise RuntimeError(
                f"the ledger has schema version {current}, newer than this NoorAPI understands ({schema.SCHEMA_VERSION})"
            )
        for version in range(current, schema.SCHEMA_VERSION):
            await conn.execute(dialect.migration(schema.MIGRATIONS[version]))
            await conn.execute("INSERT INTO noor_schema (version) VALUES ($1)", version + 1)
    return current
