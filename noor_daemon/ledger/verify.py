"""Verifying the derived tables against the facts: `noor ledger verify [--repair]`.

Each derived table (`usage_hourly`, `usage_daily`, `route_hourly`) is recomputed from the facts
(`usage_events`, `route_attempts`), a span of days at a time, and compared row by row with what the
table holds: every difference is reported with its table, key, expected and found values. The facts are
read once per span, grouped by hour, account, key, model and provider, and folded here into all three
tables (one pass over `usage_events` instead of one per table). All reads happen in one snapshot (a read transaction), so a
daemon committing meanwhile causes no false alarm. `--repair` rewrites the derived tables from the
facts in one transaction (`usage.rebuild_derived`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from noor_daemon.clock import iso
from noor_daemon.domain.windows import DAY_MS, HOUR_MS
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import COLUMNS, DERIVED, rebuild_derived

TIME_COLUMN = {"usage_hourly": "hour", "usage_daily": "day", "route_hourly": "hour"}
CHUNK_DAYS = 7
"""Days compared per query: big enough to amortize a query, small enough to show progress."""
MAX_REPORTED = 1000
"""Differences listed at most (the count is always whole)."""

Progress = Callable[[int, int | None], None]


@dataclass
class Difference:
    table: str
    key: dict[str, Any]
    expected: dict[str, Any] | None
    found: dict[str, Any] | None

    def json(self) -> dict[str, Any]:
        time_column = TIME_COLUMN[self.table]
        return {
            "table": self.table,
            "key": {**self.key, time_column: iso(self.key[time_column])},
            "expected": self.expected,
            "found": self.found,
        }


@dataclass
class VerifyReport:
    events: int = 0
    attempts: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    difference_count: int = 0
    seconds: float = 0.0
    repaired: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return self.difference_count == 0

    def json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "attempts": self.attempts,
            "rows": self.rows,
            "difference_count": self.difference_count,
            "differences": [d.json() for d in self.differences],
            "seconds": round(self.seconds, 2),
            "repaired": self.repaired,
        }


def _values(table: str, values: Any) -> dict[str, Any]:
    names = COLUMNS[table][len(DERIVED[table][0]):]
    return {name: (float(v) if name.endswith("_sum") else int(v)) for name, v in zip(names, values, strict=True)}


async def verify(ledger: Ledger, *, progress: Progress | None = None) -> VerifyReport:
    """Recompute every derived table from the facts and compare; the ledger is only read."""
    started = time.perf_counter()
    report = VerifyReport()
    async with ledger.snapshot() as db:

        async def one(sql: str, params: tuple = ()) -> Any:
            async with db.execute(sql, params) as cursor:
                return await cursor.fetchone()

        # SQLite folds a lone call's rollups a moment after its facts: facts past the marks (read in the same
        # snapshot) are not in the rollups yet, and are not a difference. PostgreSQL writes them together.
        folded = {"usage_events": 2**62, "route_attempts": 2**62}
        if ledger.engine == "sqlite":
            async with db.execute("SELECT facts, folded_through FROM rollup_watermark") as cursor:
                folded = {name: int(mark) for name, mark in await cursor.fetchall()}
        report.events = (await one("SELECT count(*) FROM usage_events"))[0]
        report.attempts = (await one("SELECT count(*) FROM route_attempts"))[0]
        bounds = []
        for table, column in (("usage_events", "ts"), ("route_attempts", "ts"), *((t, c) for t, c in TIME_COLUMN.items())):
            low, high = await one(f"SELECT min({column}), max({column}) FROM {table}")
            if low is not None:
                bounds += [int(low), int(high)]
        for table in DERIVED:
            report.rows[table] = (await one(f"SELECT count(*) FROM {table}"))[0]
        if not bounds:
            report.seconds = time.perf_counter() - started
            return report
        first = min(bounds) - min(bounds) % DAY_MS
        end = max(bounds) - max(bounds) % DAY_MS + DAY_MS
        total = (end - first) // DAY_MS
        for low in range(first, end, CHUNK_DAYS * DAY_MS):
            high = min(end, low + CHUNK_DAYS * DAY_MS)
            expected = await _expected(db, low, high, folded)
            for table, keys in ((t, DERIVED[t][0]) for t in DERIVED):
                await _compare(db, table, keys, expected[table], low, high, report)
            if progress is not None:
                progress((high - first) // DAY_MS, total)
    report.seconds = time.perf_counter() - started
    return report


# Plain columns and integer division: SQLite groups these twice as fast as coalesce() and `ts - ts % n`.
_FACTS = f"""SELECT ts / {HOUR_MS}, account_id, key_id, model, provider, count(*),
        sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), sum(prompt_tokens), sum(completion_tokens), sum(latency_ms),
        sum(ttft_ms), count(ttft_ms), sum(cost), sum(CASE WHEN cost IS NULL AND prompt_tokens + completion_tokens > 0 THEN 1 ELSE 0 END)
    FROM usage_events WHERE ts >= ? AND ts < ? AND id <= ? GROUP BY 1, 2, 3, 4, 5"""
_ATTEMPTS = f"""SELECT ts / {HOUR_MS}, provider, model, count(*), sum(latency_ms)
    FROM route_attempts WHERE ts >= ? AND ts < ? AND id <= ? GROUP BY 1, 2, 3"""


async def _expected(db: Any, low: int, high: int, folded: dict[str, int]) -> dict[str, dict[tuple, list]]:
    """What each derived table should hold for [low, high) (whole days), by key: the facts folded as
    `usage.increments` folds them, up to the marks of what the rollups have folded (`folded`)."""
    hourly: dict[tuple, list] = {}
    daily: dict[tuple, list] = {}
    routes: dict[tuple, list] = {}
    async with db.execute(_FACTS, (low, high, folded["usage_events"])) as cursor:
        facts = await cursor.fetchall()
    for hour, account, key, model, provider, n, errors, prompt, completion, latency, ttft, ttft_count, cost, unpriced in facts:
        hour = int(hour) * HOUR_MS
        account, key, ttft, cost = account or "", key or "", ttft or 0.0, int(cost or 0)
        for table, when in ((hourly, hour), (daily, hour - hour % DAY_MS)):
            row = table.get((when, account, key, model))
            if row is None:
                table[(when, account, key, model)] = [n, errors, prompt, completion, latency, cost, unpriced]
            else:
                for i, value in enumerate((n, errors, prompt, completion, latency, cost, unpriced)):
                    row[i] += value
        if provider:
            row = routes.get((hour, provider, model))
            if row is None:
                routes[(hour, provider, model)] = [n, errors, prompt, completion, latency, ttft, ttft_count, cost]
            else:
                for i, value in enumerate((n, errors, prompt, completion, latency, ttft, ttft_count, cost)):
                    row[i] += value
    async with db.execute(_ATTEMPTS, (low, high, folded["route_attempts"])) as cursor:
        attempts = await cursor.fetchall()
    for hour, provider, model, n, latency in attempts:
        hour = int(hour) * HOUR_MS
        row = routes.get((hour, provider, model))
        if row is None:
            routes[(hour, provider, model)] = [n, n, 0, 0, latency, 0.0, 0, 0]
        else:
            row[0] += n
            row[1] += n
            row[4] += latency
    return {"usage_hourly": hourly, "usage_daily": daily, "route_hourly": routes}


async def _compare(db: Any, table: str, keys: tuple[str, ...], expected: dict[tuple, list], low: int, high: int,
                   report: VerifyReport) -> None:
    width = len(keys)
    column = TIME_COLUMN[table]
    names = COLUMNS[table][width:]
    exact = [i for i, name in enumerate(names) if not name.endswith("_sum")]
    close = [i for i, name in enumerate(names) if name.endswith("_sum")]
    async with db.execute(f"SELECT {', '.join(COLUMNS[table])} FROM {table} WHERE {column} >= ? AND {column} < ?", (low, high)) as cursor:
        found = {(int(r[0]), *r[1:width]): r[width:] for r in await cursor.fetchall()}
    for key in expected.keys() | found.keys():
        want, have = expected.get(key), found.get(key)
        if (
            want is not None and have is not None
            and all(want[i] == have[i] for i in exact)
            and all(math.isclose(want[i], have[i], rel_tol=1e-9, abs_tol=1e-6) for i in close)
        ):
            continue
        report.difference_count += 1
        if len(report.differences) < MAX_REPORTED:
            report.differences.append(
                Difference(
                    table,
                    dict(zip(keys, key, strict=True)),
                    _values(table, want) if want is not None else None,
                    _values(table, have) if have is not None else None,
                )
            )


async def repair(ledger: Ledger) -> dict[str, int]:
    """Rewrite every derived table from the facts, in one transaction; returns the rows written per table."""
    return await ledger.write(rebuild_derived)
