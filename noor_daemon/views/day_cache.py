"""Whole past days of usage, kept in memory for the long usage ranges (30 and 90 days, the week)."""

from __future__ import annotations

import asyncio
from typing import Any

from noor_daemon.domain.windows import DAY_MS, HOUR_MS, Window, floor, retention_cutoff

Rows = list[tuple]
"""A cached day's rows: (bucket start, group, model, requests, errors, prompt, completion)."""


class DayCache:
    """Past days of the rollups summed per bucket, group and model, kept so that the 30- and 90-day
    usage ranges (and the week's 3-hour buckets) read a few thousand rows instead of grouping hundreds of
    thousands each time.

    Which days may be kept is decided here (`keepable`), once: a day that ended over an hour ago (a call
    still landing in it is a rare long stream, and any commit into a kept day drops it: `forget_days`),
    after the day retention is cutting into. The current day is always read from the ledger. Everything is
    dropped when an account is deleted. A fill that raced a commit into one of its days is not kept
    (`generation`).
    """

    MAX_ROWS = 500_000

    def __init__(self) -> None:
        self.days: dict[str, dict[int, Rows]] = {}
        self.rows = 0
        self.generation = 0
        """Bumped whenever kept days are dropped: a fill read before that may be stale and is not kept."""
        self.reader: Any = None
        """A read-only connection of its own, so filling the cache never queues the admin API's other reads."""
        self.filling = asyncio.Lock()
        """One fill at a time: two screens asking at once do not both read the same days."""

    @staticmethod
    def keepable(window: Window, now_ms: int, usage_days: int) -> tuple[int, int]:
        """The [first, last) whole days of `window` that may be kept."""
        first = max(-(-window.start // DAY_MS) * DAY_MS, floor(retention_cutoff(now_ms, usage_days), DAY_MS) + DAY_MS)
        last = min(floor(now_ms - HOUR_MS, DAY_MS), floor(window.end, DAY_MS))
        return first, max(first, last)

    def holds_any(self) -> bool:
        """Whether any day is kept (an empty day counts: it would hide a call that lands in it)."""
        return any(self.days.values())

    def get(self, column: str) -> dict[int, Rows]:
        return self.days.setdefault(column, {})

    def put(self, column: str, day: int, rows: Rows) -> bool:
        """Keep `rows` for `day`; False (and nothing kept) once the cache is full."""
        if self.rows + len(rows) > self.MAX_ROWS:
            return False
        days = self.get(column)
        self.rows += len(rows) - len(days.get(day, ()))
        days[day] = rows
        return True

    def forget_days(self, days: set[int]) -> None:
        """Calls landed in these days: they are read from the ledger again next time."""
        self.generation += 1
        for cached in self.days.values():
            for day in days & cached.keys():
                self.rows -= len(cached.pop(day))

    def prune(self, before: int, column: str | None = None) -> None:
        """Drop kept days before `before` (of one column's cache, or of all)."""
        for days in [self.get(column)] if column is not None else list(self.days.values()):
            for day in [d for d in days if d < before]:
                self.rows -= len(days.pop(day))

    def clear(self) -> None:
        self.generation += 1
        self.days.clear()
        self.rows = 0
