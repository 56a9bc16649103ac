"""The usage event (what the ledger learns about one call; no content, ever) and the one writer of its
derived tables.

`usage_events` and `route_attempts` are the facts; `usage_hourly`, `usage_daily` and `route_hourly`
are derived from them and from nothing else. Three functions here are the only code that changes
them, on both engines:

- `increments` folds a batch into the rows every derived table gains: the batch commit of either
  engine (`SqliteLedger.write_batch`, `PostgresLedger._write_usage`) inserts the facts and upserts
  those increments in one transaction. `Ledger.append_usage` is the same path for history written in
  bulk (the demo, the benchmarks, the tests).
- `delete_usage` removes facts (retention, erasure) and subtracts the same fold of what it removed, so
  after every commit each derived table equals what a fresh fold of the remaining facts would give.
- `rebuild_derived` recomputes the derived tables from the facts (`noor ledger verify --repair`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from noor_daemon.domain.windows import DAY_MS, HOUR_MS


@dataclass(slots=True)
class UsageEvent:
    ts: int
    """Milliseconds since the epoch, when the call arrived."""
    model: str
    endpoint: str
    status: int
    latency_ms: float
    account_id: str | None = None
    key_id: str | None = None
    provider: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    stream: bool = False
    estimated: bool = False
    cached_tokens: int = 0
    """Of the prompt tokens, those read from the provider's prompt cache (priced as such)."""
    cache_write_tokens: int = 0
    """Of the prompt tokens, those written to the provider's prompt cache."""
    cost: int | None = None
    """Picounits of the configured currency at the prices in effect when the call was metered; None
    when nobody priced the model. Kept as it was: a later price change does not rewrite history."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def row(self) -> tuple:
        """The `usage_events` row, in `EVENT_COLUMNS` order."""
        return (
            self.ts,
            self.account_id,
            self.key_id,
            self.model,
            self.provider,
            self.endpoint,
            self.status,
            self.prompt_tokens,
            self.completion_tokens,
            self.latency_ms,
            self.ttft_ms,
            int(self.stream),
            int(self.estimated),
            self.cached_tokens,
            self.cache_write_tokens,
            self.cost,
        )


@dataclass(slots=True)
class RouteSample:
    """One failed attempt at an upstream that the call then left for another route.

    It counts in the route rollups (routing learns from it) but is not a usage row: the
    caller is charged once, for the attempt that answered.
    """

    ts: int
    provider: str
    model: str
    status: int
    latency_ms: float

    def row(self) -> tuple:
        """The `route_attempts` row."""
        return (self.ts, self.provider, self.model, self.status, self.latency_ms)


EVENT_COLUMNS = (
    "ts", "account_id", "key_id", "model", "provider", "endpoint", "status",
    "prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "stream", "estimated",
    "cached_tokens", "cache_write_tokens", "cost",
)
ATTEMPT_COLUMNS = ("ts", "provider", "model", "status", "latency_ms")

INSERT_ATTEMPT = "INSERT INTO route_attempts (ts, provider, model, status, latency_ms) VALUES (?, ?, ?, ?, ?)"

INSERT_EVENT = """
INSERT INTO usage_events (ts, account_id, key_id, model, provider, endpoint, status,
    prompt_tokens, completion_tokens, latency_ms, ttft_ms, stream, estimated, cached_tokens, cache_write_tokens, cost)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

UPSERT_USAGE_HOURLY = """
INSERT INTO usage_hourly (hour, account_id, key_id, model, requests, errors,
    prompt_tokens, completion_tokens, latency_ms_sum, cost, unpriced)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, account_id, key_id, model) DO UPDATE SET
    requests = usage_hourly.requests + excluded.requests,
    errors = usage_hourly.errors + excluded.errors,
    prompt_tokens = usage_hourly.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_hourly.completion_tokens + excluded.completion_tokens,
    latency_ms_sum = usage_hourly.latency_ms_sum + excluded.latency_ms_sum,
    cost = usage_hourly.cost + excluded.cost,
    unpriced = usage_hourly.unpriced + excluded.unpriced
"""

UPSERT_USAGE_DAILY = """
INSERT INTO usage_daily (day, account_id, key_id, model, requests, errors,
    prompt_tokens, completion_tokens, latency_ms_sum, cost, unpriced)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, account_id, key_id, model) DO UPDATE SET
    requests = usage_daily.requests + excluded.requests,
    errors = usage_daily.errors + excluded.errors,
    prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
    latency_ms_sum = usage_daily.latency_ms_sum + excluded.latency_ms_sum,
    cost = usage_daily.cost + excluded.cost,
    unpriced = usage_daily.unpriced + excluded.unpriced
"""

UPSERT_ROUTE_HOURLY = """
INSERT INTO route_hourly (hour, provider, model, requests, errors, prompt_tokens,
    completion_tokens, latency_ms_sum, ttft_ms_sum, ttft_count, cost)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, provider, model) DO UPDATE SET
    requests = route_hourly.requests + excluded.requests,
    errors = route_hourly.errors + excluded.errors,
    prompt_tokens = route_hourly.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = route_hourly.completion_tokens + excluded.completion_tokens,
    latency_ms_sum = route_hourly.latency_ms_sum + excluded.latency_ms_sum,
    ttft_ms_sum = route_hourly.ttft_ms_sum + excluded.ttft_ms_sum,
    ttft_count = route_hourly.ttft_count + excluded.ttft_count,
    cost = route_hourly.cost + excluded.cost
"""


@dataclass(slots=True)
class Increments:
    """What a set of facts adds to each derived table: rows in the column order of the upserts."""

    hourly: list[tuple]
    daily: list[tuple]
    routes: list[tuple]


def increments(events: Iterable[UsageEvent], samples: Iterable[RouteSample] = ()) -> Increments:
    """Fold events and failed attempts into per-hour, per-day and per-route increments.

    Rolling up in Python first means one upsert per (hour, account, key, model) per batch rather
    than one per event. The same fold is subtracted when facts are deleted (`delete_usage`).
    """
    usage: dict[tuple, list] = {}
    daily: dict[tuple, list] = {}
    routes: dict[tuple, list] = {}
    for e in events:
        hour = e.ts - e.ts % HOUR_MS
        err = 1 if e.status >= 400 else 0
        account, key = e.account_id or "", e.key_id or ""
        cost = e.cost or 0
        unpriced = 1 if e.cost is None and (e.prompt_tokens or e.completion_tokens) else 0
        for table, when in ((usage, hour), (daily, hour - hour % DAY_MS)):
            u = table.get((when, account, key, e.model))
            if u is None:
                u = table[(when, account, key, e.model)] = [0, 0, 0, 0, 0.0, 0, 0]
            u[0] += 1
            u[1] += err
            u[2] += e.prompt_tokens
            u[3] += e.completion_tokens
            u[4] += e.latency_ms
            u[5] += cost
            u[6] += unpriced
        if e.provider:
            r = routes.get((hour, e.provider, e.model))
            if r is None:
                r = routes[(hour, e.provider, e.model)] = [0, 0, 0, 0, 0.0, 0.0, 0, 0]
            r[0] += 1
            r[1] += err
            r[2] += e.prompt_tokens
            r[3] += e.completion_tokens
            r[4] += e.latency_ms
            if e.ttft_ms is not None:
                r[5] += e.ttft_ms
                r[6] += 1
            r[7] += cost
    for sample in samples:
        key = (sample.ts - sample.ts % HOUR_MS, sample.provider, sample.model)
        r = routes.get(key)
        if r is None:
            r = routes[key] = [0, 0, 0, 0, 0.0, 0.0, 0, 0]
        r[0] += 1
        r[1] += 1
        r[4] += sample.latency_ms
    # Sorted by key: two daemons' batches on PostgreSQL lock the same rows in the same order.
    return Increments(
        sorted(k + tuple(v) for k, v in usage.items()),
        sorted(k + tuple(v) for k, v in daily.items()),
        sorted(k + tuple(v) for k, v in routes.items()),
    )


# -- deleting facts, and what they added ----------------------------------------------------------

_SUBTRACT_USAGE = """UPDATE {table} SET requests = requests - ?, errors = errors - ?, prompt_tokens = prompt_tokens - ?,
    completion_tokens = completion_tokens - ?, latency_ms_sum = latency_ms_sum - ?, cost = cost - ?, unpriced = unpriced - ?
    WHERE {time} = ? AND account_id = ? AND key_id = ? AND model = ?"""
_SUBTRACT_ROUTE = """UPDATE route_hourly SET requests = requests - ?, errors = errors - ?, prompt_tokens = prompt_tokens - ?,
    completion_tokens = completion_tokens - ?, latency_ms_sum = latency_ms_sum - ?, ttft_ms_sum = ttft_ms_sum - ?,
    ttft_count = ttft_count - ?, cost = cost - ? WHERE hour = ? AND provider = ? AND model = ?"""
_DROP_EMPTY_USAGE = "DELETE FROM {table} WHERE {time} = ? AND account_id = ? AND key_id = ? AND model = ? AND requests <= 0"
_DROP_EMPTY_ROUTE = "DELETE FROM route_hourly WHERE hour = ? AND provider = ? AND model = ? AND requests <= 0"

EVENT_FIELDS = (
    "id, ts, account_id, key_id, model, provider, endpoint, status, prompt_tokens, completion_tokens, latency_ms, ttft_ms, cost"
)


def event_of(row: Sequence[Any]) -> UsageEvent:
    return UsageEvent(
        ts=row[1], account_id=row[2] or None, key_id=row[3] or None, model=row[4], provider=row[5], endpoint=row[6],
        status=row[7], prompt_tokens=row[8], completion_tokens=row[9], latency_ms=row[10], ttft_ms=row[11], cost=row[12],
    )


async def _subtract(db: Any, found: Increments) -> None:
    for table, time, rows in (("usage_hourly", "hour", found.hourly), ("usage_daily", "day", found.daily)):
        if rows:
            await db.executemany(_SUBTRACT_USAGE.format(table=table, time=time), [r[4:] + r[:4] for r in rows])
            await db.executemany(_DROP_EMPTY_USAGE.format(table=table, time=time), [r[:4] for r in rows])
    if found.routes:
        await db.executemany(_SUBTRACT_ROUTE, [r[3:] + r[:3] for r in found.routes])
        await db.executemany(_DROP_EMPTY_ROUTE, [r[:3] for r in found.routes])


async def delete_usage(db: Any, where: str, params: Sequence[Any], limit: int) -> int:
    """In `db`'s transaction: delete up to `limit` usage events matching `where` (oldest first) and take
    exactly what they added out of every derived table. Returns how many went (fewer than `limit`: done)."""
    async with db.execute(
        f"SELECT {EVENT_FIELDS} FROM usage_events WHERE {where} ORDER BY ts, id LIMIT ?", (*params, limit)
    ) as cursor:
        rows = list(await cursor.fetchall())
    if not rows:
        return 0
    await _subtract(db, increments(event_of(r) for r in rows))
    ids = [r[0] for r in rows]
    for low in range(0, len(ids), 500):
        chunk = ids[low : low + 500]
        await db.execute(f"DELETE FROM usage_events WHERE id IN ({','.join('?' * len(chunk))})", chunk)
    return len(rows)


async def delete_attempts(db: Any, before_ms: int, limit: int) -> int:
    """Failed attempts older than `before_ms`, and what they added to `route_hourly` (retention)."""
    async with db.execute(
        "SELECT id, ts, provider, model, status, latency_ms FROM route_attempts WHERE ts < ? ORDER BY ts, id LIMIT ?",
        (before_ms, limit),
    ) as cursor:
        rows = list(await cursor.fetchall())
    if not rows:
        return 0
    await _subtract(db, increments((), (RouteSample(r[1], r[2], r[3], r[4], r[5]) for r in rows)))
    ids = [r[0] for r in rows]
    for low in range(0, len(ids), 500):
        chunk = ids[low : low + 500]
        await db.execute(f"DELETE FROM route_attempts WHERE id IN ({','.join('?' * len(chunk))})", chunk)
    return len(rows)


# -- recomputing the derived tables from the facts ---------------------------------------------

COLUMNS = {
    "usage_hourly": (
        "hour", "account_id", "key_id", "model", "requests", "errors", "prompt_tokens", "completion_tokens", "latency_ms_sum",
        "cost", "unpriced",
    ),
    "usage_daily": (
        "day", "account_id", "key_id", "model", "requests", "errors", "prompt_tokens", "completion_tokens", "latency_ms_sum",
        "cost", "unpriced",
    ),
    "route_hourly": (
        "hour", "provider", "model", "requests", "errors", "prompt_tokens", "completion_tokens", "latency_ms_sum",
        "ttft_ms_sum", "ttft_count", "cost",
    ),
}
"""Each derived table's columns, keys first."""


DERIVED = {
    "usage_hourly": (
        ("hour", "account_id", "key_id", "model"),
        f"""SELECT ts - ts % {HOUR_MS} AS hour, coalesce(account_id, '') AS account_id, coalesce(key_id, '') AS key_id, model,
               count(*) AS requests, sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(latency_ms) AS latency_ms_sum, coalesce(sum(cost), 0) AS cost,
               sum(CASE WHEN cost IS NULL AND prompt_tokens + completion_tokens > 0 THEN 1 ELSE 0 END) AS unpriced
            FROM usage_events WHERE ts >= ? AND ts < ?
            GROUP BY ts - ts % {HOUR_MS}, coalesce(account_id, ''), coalesce(key_id, ''), model""",
    ),
    "usage_daily": (
        ("day", "account_id", "key_id", "model"),
        f"""SELECT ts - ts % {DAY_MS} AS day, coalesce(account_id, '') AS account_id, coalesce(key_id, '') AS key_id, model,
               count(*) AS requests, sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(latency_ms) AS latency_ms_sum, coalesce(sum(cost), 0) AS cost,
               sum(CASE WHEN cost IS NULL AND prompt_tokens + completion_tokens > 0 THEN 1 ELSE 0 END) AS unpriced
            FROM usage_events WHERE ts >= ? AND ts < ?
            GROUP BY ts - ts % {DAY_MS}, coalesce(account_id, ''), coalesce(key_id, ''), model""",
    ),
    "route_hourly": (
        ("hour", "provider", "model"),
        f"""SELECT hour, provider, model, sum(requests) AS requests, sum(errors) AS errors, sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens, sum(latency_ms_sum) AS latency_ms_sum,
               sum(ttft_ms_sum) AS ttft_ms_sum, sum(ttft_count) AS ttft_count, sum(cost) AS cost
            FROM (
              SELECT ts - ts % {HOUR_MS} AS hour, provider, model, 1 AS requests,
                     CASE WHEN status >= 400 THEN 1 ELSE 0 END AS errors, prompt_tokens, completion_tokens,
                     latency_ms AS latency_ms_sum, coalesce(ttft_ms, 0) AS ttft_ms_sum,
                     CASE WHEN ttft_ms IS NULL THEN 0 ELSE 1 END AS ttft_count, coalesce(cost, 0) AS cost
                FROM usage_events WHERE provider IS NOT NULL AND provider != '' AND ts >= ? AND ts < ?
              UNION ALL
              SELECT ts - ts % {HOUR_MS}, provider, model, 1, 1, 0, 0, latency_ms, 0, 0, 0
                FROM route_attempts WHERE ts >= ? AND ts < ?
            ) AS facts
            GROUP BY hour, provider, model""",
    ),
}
"""Each derived table: its key columns, and the query that computes its rows over [low, high) from the facts
(the route query takes the span twice). Spans are whole days, so the daily query folds whole days too."""


def expected_params(table: str, low: int, high: int) -> tuple[int, ...]:
    return (low, high, low, high) if table == "route_hourly" else (low, high)


async def rebuild_derived(db: Any) -> dict[str, int]:
    """In `db`'s transaction: every derived table emptied and recomputed from the facts, which are all folded
    from now on. Returns rows written."""
    written = {}
    for table, (_keys, query) in DERIVED.items():
        await db.execute(f"DELETE FROM {table}")
        columns = COLUMNS[table]
        await db.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM ({query}) AS expected",
            expected_params(table, -(2**62), 2**62),
        )
        async with db.execute(f"SELECT count(*) FROM {table}") as cursor:
            written[table] = (await cursor.fetchone())[0]
    for facts in ("usage_events", "route_attempts"):
        await db.execute(
            f"UPDATE rollup_watermark SET folded_through = (SELECT coalesce(max(id), 0) FROM {facts}) WHERE facts = ?", (facts,)
        )
    return written


async def shift_usage(db: Any, delta_ms: int) -> None:
    """Move every fact and every derived row `delta_ms` later, in `db`'s transaction: a whole number of days,
    so each hour and day row moves with exactly its facts (the benchmarks' cached ledgers follow the clock)."""
    if delta_ms % DAY_MS:
        raise ValueError("usage moves by whole days only")
    for table, column in (("usage_events", "ts"), ("route_attempts", "ts"), ("usage_hourly", "hour"),
                          ("route_hourly", "hour"), ("usage_daily", "day")):
        # Through a copy: shifting a key column in place could collide with a row not yet shifted.
        await db.execute(f"CREATE TEMP TABLE shifted AS SELECT * FROM {table}")
        await db.execute(f"DELETE FROM {table}")
        await db.execute(f"UPDATE shifted SET {column} = {column} + ?", (delta_ms,))
        await db.execute(f"INSERT INTO {table} SELECT * FROM shifted")
        await db.execute("DROP TABLE shifted")
