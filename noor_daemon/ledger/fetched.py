"""A query answered whole: the rows fetched when it runs, handed out by a cursor that only reads a list.

What the code reads through `ledger.reader` looks like aiosqlite's API (`async with db.execute(sql) as
cursor`, then `fetchone`/`fetchall`). PostgreSQL's connections answer that way by nature; SQLite's shared
read connection must too: an aiosqlite cursor left open across an `await` keeps its read transaction, and
every other query on that connection meanwhile reads the same older snapshot — a row `write` has just
committed would be missing from the very next read.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import aiosqlite


class FetchedCursor:
    """What aiosqlite's cursor offers the code: rows, rowcount, lastrowid."""

    __slots__ = ("_rows", "_at", "rowcount", "lastrowid")

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None = None) -> None:
        self._rows, self._at, self.rowcount, self.lastrowid = rows, 0, rowcount, lastrowid

    async def fetchone(self) -> Any | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    async def fetchall(self) -> list[Any]:
        rows, self._at = self._rows[self._at :], len(self._rows)
        return rows

    async def fetchmany(self, size: int = 1) -> list[Any]:
        rows = self._rows[self._at : self._at + size]
        self._at += len(rows)
        return rows


class Query:
    """`await db.execute(…)` and `async with db.execute(…) as cursor`, as with aiosqlite."""

    __slots__ = ("_coro",)

    def __init__(self, coro: Awaitable[FetchedCursor]) -> None:
        self._coro = coro

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self) -> FetchedCursor:
        return await self._coro

    async def __aexit__(self, *exc: object) -> None:
        return None


class WholeQueries:
    """A shared aiosqlite read connection whose every query runs to its last row in one step of its thread."""

    __slots__ = ("conn",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> Query:
        return Query(self._fetch(sql, params))

    async def _fetch(self, sql: str, params: Any) -> FetchedCursor:
        rows = list(await self.conn.execute_fetchall(sql, params))
        return FetchedCursor(rows, len(rows))
