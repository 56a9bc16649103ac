"""Time windows over usage, defined once: which hours and days "the last N hours/days" and "this
month" cover, in UTC.

Every view reads a window through this module — the usage summary, the series at every range,
the quota periods, the billing meter's hours and the self-service views — so two views asked
about the same span always count the same calls. A window is a half-open span of milliseconds
[start, end) whose start is on an hour (and a day, for day windows): the hourly rollups hold
exactly the calls of each hour, so a window is the sum of whole rollup rows, and a direct count
of `usage_events` with `start <= ts < end` gives the same answer.

"The last N hours" is the N hourly buckets ending with the current one (the present hour counts,
partial as it is); "the last N days" is the N UTC days ending with today. Unix time has exactly
86,400 seconds a day, so days are arithmetic; months come from the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def floor(ms: int, unit: int) -> int:
    return ms - ms % unit


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open span [start, end) in milliseconds, cut into `buckets` equal buckets of `bucket_ms`."""

    start: int
    end: int
    bucket_ms: int

    @property
    def buckets(self) -> int:
        return (self.end - self.start) // self.bucket_ms

    def bucket_of(self, ts: int) -> int | None:
        """The index of the bucket holding `ts`, or None outside the window."""
        if not self.start <= ts < self.end:
            return None
        return (ts - self.start) // self.bucket_ms

    def split_days(self) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
        """(whole UTC days as a [low, high) span or None, the [low, high) hour spans around them).

        What a reader takes from `usage_daily` and what from `usage_hourly`: a day row is read only
        when the whole day is inside the window (the daily rollup is exact, so a whole day needs no
        hourly rows), the partial days at either end hour by hour.
        """
        first = -(-self.start // DAY_MS) * DAY_MS  # the first day beginning inside the window
        last = floor(self.end, DAY_MS)  # the end of the last whole day
        if first >= last:
            return None, [(self.start, self.end)]
        hours = []
        if self.start < first:
            hours.append((self.start, first))
        if last < self.end:
            hours.append((last, self.end))
        return (first, last), hours


def last_buckets(now_ms: int, bucket_ms: int, buckets: int) -> Window:
    """The `buckets` buckets of `bucket_ms` (which divides a day) ending with the one holding now."""
    end = floor(now_ms, bucket_ms) + bucket_ms
    return Window(end - buckets * bucket_ms, end, bucket_ms)


def last_hours(now_ms: int, hours: int) -> Window:
    return last_buckets(now_ms, HOUR_MS, hours)


def last_days(now_ms: int, days: int) -> Window:
    return last_buckets(now_ms, DAY_MS, days)


def calendar_period(kind: str, now_ms: int) -> Window:
    """The UTC day or calendar month holding `now_ms`: what day and month quotas count, and a bill's period."""
    if kind == "day":
        start = floor(now_ms, DAY_MS)
        return Window(start, start + DAY_MS, DAY_MS)
    start, end = month_of_day(now_ms // DAY_MS)
    return Window(start, end, DAY_MS)


def covering(start_ms: int, end_ms: int) -> Window:
    """The whole hours covering [start_ms, end_ms): a span set from outside (a Stripe subscription's period)."""
    return Window(floor(start_ms, HOUR_MS), -(-end_ms // HOUR_MS) * HOUR_MS, HOUR_MS)


@lru_cache(maxsize=64)
def month_of_day(day: int) -> tuple[int, int]:
    """[start, end) in milliseconds of the calendar month holding UTC day number `day` (cached: quotas ask per call)."""
    first = datetime.fromtimestamp(day * 86400, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return int(first.timestamp()) * 1000, int(after.timestamp()) * 1000


def retention_cutoff(now_ms: int, usage_days: int) -> int:
    """Usage before this hour goes: `usage_days` back from now, on an hour, so that retention removes
    whole rollup hours and what remains of every rollup equals the calls that remain."""
    return floor(now_ms - usage_days * DAY_MS, HOUR_MS)


def closed_hours(now_ms: int, delay_ms: int) -> int:
    """The end of the last hour closed `delay_ms` after it ended (the billing meter's horizon)."""
    return floor(now_ms - delay_ms, HOUR_MS)
