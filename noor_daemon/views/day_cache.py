"""Whole past days of usage, kept in memory for the long usage ranges (30 and 90 days, the week)."""

from __future__ import annotations

import asyncio
from typing import Any


class DayCache:
    """Past days of `usage_hourly` summed per day, group and model, kept so that the 30- and 90-day
    usage ranges read a few thousand rows instead of grouping hundreds of thousands each time.

    A day is cached once it has been over for an hour (no call can still land in it); the current
    day is always read from the ledger. Everything is dropped when an account is deleted, and
    `views/series.py` never caches a day the retention job may be cutting into.
    """

    MAX_ROWS = 500_000

    def __init__(self) -> None:
        self.days: dict[str, dict[int, list[tuple[str, str, int, int, int, int]]]] = {}
        self.rows = 0
        self.reader: Any = None
        """A read-only connection of its own, so filling the cache never queues the admin API's other reads."""
        self.filling = asyncio.Lock()
        """One fill at a time: two screens asking at once do not both read the same days."""

    def get(self, column: str) -> dict[int, list[tuple[str, str, int, int, int, int]]]:
        return self.days.setdefault(column, {})

    def put(self, column: str, day: int, rows: list[tuple[str, str, int, int, int, int]]) -> bool:
        """Keep `rows` for `day`; False (and nothing kept) once the cache is full."""
        if self.rows + len(rows) > self.MAX_ROWS:
            return False
        days = self.get(column)
        self.rows += len(rows) - len(days.get(day, ()))
        days[day] = rows
        return True

    def forget_days(self, days: set[int]) -> None:
        """Calls landed in these (past) days: they are read from the ledger again next time."""
        for cached in self.days.values():
            for day in days & cached.keys():
                self.rows -= len(cached.pop(day))

    def prune(self, before: int) -> None:
        for days in self.days.values():
            for day in [d for d in days if d < before]:
                self.rows -= len(days.pop(day))

    def clear(self) -> None:
        self.days.clear()
        self.rows = 0
