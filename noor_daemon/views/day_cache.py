"""Whole past days of usage, kept in memory for the long usage ranges (30 and 90 days, the week)."""

from __future__ import annotations

import asyncio
import sys
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from noor_daemon.domain.windows import DAY_MS, HOUR_MS, Window, floor, retention_cutoff

Row = tuple
"""(bucket start, group, model, requests, errors, prompt, completion, cost, unpriced): a rollup row summed
per bucket, group and model, as `views.series` reads it."""
SUMS = 6
"""The counts after a row's (bucket start, group, model)."""


class Day:
    """One kept day's rows, stored by column: ~90 bytes a row, where the same rows as tuples of Python ints
    and strings take ~420 (a 90-day range by key over 40 keys and 5 models: 18,000 rows, 1.6 MB instead of
    7.6). Each group and model name is one shared string, however many rows hold it."""

    __slots__ = ("columns",)

    def __init__(self, rows: Sequence[Row]) -> None:
        """Raises OverflowError or TypeError for counts that are not 64-bit integers, ValueError for rows of unequal
        length (such a day is not kept)."""
        bucket, group, model, *sums = zip(*rows, strict=True) if rows else [()] * (3 + SUMS)
        self.columns = (
            array("q", bucket), [_shared(g) for g in group], [_shared(m) for m in model], *(array("q", s) for s in sums)
        )

    def __len__(self) -> int:
        return len(self.columns[0])

    def __iter__(self) -> Iterator[Row]:
        return zip(*self.columns)


def _shared(name: str | None) -> str | None:
    return sys.intern(name) if name is not None else None


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
    """Rows kept at most (~45 MB as `Day`s): past it, further days are read from the ledger each time."""

    def __init__(self) -> None:
        self.days: dict[str, dict[int, Day]] = {}
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

    def get(self, column: str) -> dict[int, Day]:
        return self.days.setdefault(column, {})

    def put(self, column: str, day: int, rows: Sequence[Row]) -> bool:
        """Keep `rows` for `day`; False (and nothing kept) once the cache is full, or for counts a `Day` cannot hold."""
        if self.rows + len(rows) > self.MAX_ROWS:
            return False
        try:
            kept = Day(rows)
        except (OverflowError, TypeError, ValueError):  # counts past 64 bits, or not whole: read from the ledger
            return False
        days = self.get(column)
        self.rows += len(kept) - len(days.get(day, ()))
        days[day] = kept
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
