"""Day and month quotas: usage counted from the ledger at start, then kept current as batches commit.

Counting only committed rows (plus the in-flight reservations the limiter holds) means a
restart neither forgets usage nor counts a call twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from noor_daemon.clock import Clock
from noor_daemon.domain.windows import month_of_day
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import UsageEvent

PERIODS = ("day", "month")
NOT_COUNTED = (0.0, 0, 0, 0)
"""A period with nothing counted yet: (start, requests, tokens, cost)."""
PeriodCounts = tuple[Sequence, Sequence]
"""This day's and this month's (start, requests, tokens, cost) of one scope (`PeriodCounters.current`)."""


def period_bounds(kind: str, now: float) -> tuple[float, float]:
    """Start and end (seconds since the epoch) of the UTC day or calendar month holding `now`: the
    quota periods, as `windows.calendar_period` defines them. This runs on every call, so it does the
    day's arithmetic itself and takes the month from `windows.month_of_day`'s cache."""
    day = int(now // 86400)
    if kind == "day":
        return day * 86400.0, (day + 1) * 86400.0
    start, end = month_of_day(day)
    return start / 1000, end / 1000


def counts_toward_quota(event: UsageEvent) -> bool:
    """Successful calls count as requests; every call's tokens count (failed ones carry none)."""
    return event.status < 400


async def committed_since(ledger: Ledger, start: float) -> list:
    """Requests and tokens per (account_id, key_id) committed since `start`, from the hourly rollups.

    What the quotas count at start; the shared counters in Redis are seeded from it too.
    """
    return await ledger.fetchall(
        """SELECT account_id, key_id, sum(requests - errors) AS requests,
                  sum(prompt_tokens + completion_tokens) AS tokens, sum(cost) AS cost
           FROM usage_hourly WHERE hour >= ? AND account_id != '' GROUP BY account_id, key_id""",
        (int(start * 1000),),
    )


class PeriodCounters:
    """Requests, tokens and spend (picounits) of this day and this month, per account and per key."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # (scope, id, period) -> [period_start, requests, tokens, cost]
        self._used: dict[tuple[str, str, str], list] = {}
        self._day = -1
        self._starts = (0.0, 0.0)
        """The UTC day `current` last saw, and the starts of its day and month."""

    async def load(self, ledger: Ledger) -> None:
        now = self.clock.now()
        for kind in PERIODS:
            start, _ = period_bounds(kind, now)
            for row in await committed_since(ledger, start):
                counts = (int(row["requests"] or 0), int(row["tokens"] or 0), int(row["cost"] or 0))
                self._add(("account", row["account_id"], kind), start, *counts)
                if row["key_id"]:
                    self._add(("key", row["key_id"], kind), start, *counts)

    def _add(self, slot: tuple[str, str, str], start: float, requests: int, tokens: int, cost: int = 0) -> None:
        entry = self._used.get(slot)
        if entry is None or start > entry[0]:
            self._used[slot] = [start, requests, tokens, cost]
        elif start == entry[0]:
            entry[1] += requests
            entry[2] += tokens
            entry[3] += cost
        # else: a call from a period that has already ended; it no longer counts

    def on_commit(self, events: list[UsageEvent]) -> None:
        """Ledger listener: fold committed rows into the current periods."""
        for event in events:
            if event.account_id is None:
                continue
            requests = 1 if counts_toward_quota(event) else 0
            tokens = event.total_tokens
            cost = event.cost or 0
            if not requests and not tokens and not cost:
                continue
            ts = event.ts / 1000
            for kind in PERIODS:
                start, _ = period_bounds(kind, ts)
                self._add(("account", event.account_id, kind), start, requests, tokens, cost)
                if event.key_id:
                    self._add(("key", event.key_id, kind), start, requests, tokens, cost)

    def current(self, scope: str, ident: str, now: float) -> PeriodCounts:
        """This day's and this month's counts of a scope, at once: every call checks its quotas and budgets
        against them (one read per scope, the periods' starts worked out once a day)."""
        day = int(now // 86400)
        if day != self._day:
            self._day, self._starts = day, (period_bounds("day", now)[0], period_bounds("month", now)[0])
        day_start, month_start = self._starts
        used = self._used
        today = used.get((scope, ident, "day"))
        month = used.get((scope, ident, "month"))
        return (
            today if today is not None and today[0] == day_start else NOT_COUNTED,
            month if month is not None and month[0] == month_start else NOT_COUNTED,
        )

    def used(self, scope: str, ident: str, kind: str) -> tuple[int, int]:
        """(requests, tokens) used in the current `kind` period."""
        entry = self._used.get((scope, ident, kind))
        start, _ = period_bounds(kind, self.clock.now())
        if entry is None or entry[0] != start:
            return 0, 0
        return entry[1], entry[2]

    def spent(self, scope: str, ident: str, kind: str) -> int:
        """Picounits spent in the current `kind` period (committed calls; the limiter adds what is in flight)."""
        entry = self._used.get((scope, ident, kind))
        start, _ = period_bounds(kind, self.clock.now())
        if entry is None or entry[0] != start:
            return 0
        return entry[3]

    def forget(self, scope: str, ident: str) -> None:
        for kind in PERIODS:
            self._used.pop((scope, ident, kind), None)
