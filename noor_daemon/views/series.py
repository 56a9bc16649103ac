"""Usage series: requests and tokens over time by model, key or account, with estimated cost.

Read by `/admin/v1/usage/series` and `/v1/me/usage` alike.

Ranges read the rollups, never raw rows: hours from `usage_hourly`, whole days of the 30- and
90-day ranges from `usage_daily` (through the day cache for the whole-ledger views); the hour
range, which needs minutes, reads the daemon's in-memory last hour (`live.MinuteUsage`). Costs come
from the config's `[prices."MODEL"]` table; a model without a price is listed as unpriced
rather than counted as free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain

from noor_daemon.clock import iso
from noor_daemon.config import Config
from noor_daemon.domain.accounts import KeyRing
from noor_daemon.domain.money import amount
from noor_daemon.domain.windows import DAY_MS, HOUR_MS, MINUTE_MS, Window, floor, last_buckets, retention_cutoff
from noor_daemon.ledger.database import Ledger
from noor_daemon.views.day_cache import DayCache, Row
from noor_daemon.views.minutes import MinuteUsage


@dataclass(frozen=True)
class Range:
    name: str
    bucket_ms: int
    buckets: int

    def window(self, now_ms: int) -> Window:
        """The range's buckets ending with the one holding now (`windows.last_buckets`)."""
        return last_buckets(now_ms, self.bucket_ms, self.buckets)


RANGES = {
    r.name: r
    for r in (
        Range("hour", MINUTE_MS, 60),
        Range("day", HOUR_MS, 24),
        Range("7d", 3 * HOUR_MS, 56),
        Range("30d", DAY_MS, 30),
        Range("90d", DAY_MS, 90),
    )
}
GROUPS = ("model", "key", "account")
OTHER = "(other)"
FILL_DAYS = 10
"""Days the day cache reads in one query when it fills."""


class _Group:
    __slots__ = ("key", "requests", "errors", "prompt", "completion", "costs", "unpriced")

    def __init__(self, key: str, points: int) -> None:
        self.key = key
        self.requests = [0] * points
        self.errors = [0] * points
        self.prompt = [0] * points
        self.completion = [0] * points
        self.costs = [0] * points
        """Picounits per bucket: the rollups' exact sums."""
        self.unpriced: set[str] = set()

    @property
    def tokens(self) -> int:
        return sum(self.prompt) + sum(self.completion)

    @property
    def cost(self) -> int:
        return sum(self.costs)

    def absorb(self, other: _Group) -> None:
        for mine, theirs in (
            (self.requests, other.requests), (self.errors, other.errors),
            (self.prompt, other.prompt), (self.completion, other.completion), (self.costs, other.costs),
        ):
            for i, value in enumerate(theirs):
                mine[i] += value
        self.unpriced |= other.unpriced


def _rows_sql(column: str, t: str, table: str, bucket: str) -> str:
    return f"""SELECT {bucket} AS b, {column} AS g, model, sum(requests), sum(errors), sum(prompt_tokens),
                      sum(completion_tokens), sum(cost), sum(unpriced)
               FROM {table} WHERE {t} >= ? AND {t} < ?"""


async def _bucket_rows(
    reader, column: str, window: Window, low: int, high: int, account_id: str | None = None
) -> list[Row]:
    """Rows of [low, high) (inside `window`) in the window's buckets, as (bucket start, g, model, sums…):
    whole days from `usage_daily` when the buckets are days, hours from `usage_hourly` otherwise."""
    part = Window(low, high, window.bucket_ms)
    days, hours = part.split_days() if window.bucket_ms == DAY_MS else (None, [(low, high)])
    spans = [("usage_hourly", "hour", lo, hi) for lo, hi in hours] + ([("usage_daily", "day", *days)] if days else [])
    rows: list = []
    for table, t, lo, hi in spans:
        sql = _rows_sql(column, t, table, f"{t} - {t} % {window.bucket_ms}")
        params: list = [lo, hi]
        if account_id is not None:
            sql += " AND account_id = ?"
            params.append(account_id)
        sql += " GROUP BY b, g, model"
        async with reader.execute(sql, params) as cursor:
            rows.extend(tuple(r) for r in await cursor.fetchall())
    return rows


async def cached_rows(
    ledger: Ledger, cache: DayCache, config: Config, column: str, window: Window, now_ms: int
) -> Iterable[Row]:
    """The window's rows for the whole ledger: the buckets of past days the cache may keep
    (`DayCache.keepable`) from the cache (each day read once), the rest (the window's partial first day, the
    last days, a day retention is cutting into) from the ledger. Answers exactly what `_bucket_rows` over the
    whole window would; the kept days' rows are made one at a time as they are folded."""
    await ledger.settle()  # the rollups hold every committed call before they are read
    key = f"{column}/{window.bucket_ms}"
    first, last = cache.keepable(window, now_ms, config.retention.usage_days)
    cache.prune(floor(retention_cutoff(now_ms, config.retention.usage_days), DAY_MS))  # retention took them
    if window.bucket_ms != DAY_MS:
        cache.prune(first, key)  # only the week has these buckets: days it left behind are not needed again
    days = cache.get(key)
    async with cache.filling:
        missing = [day for day in range(first, last, DAY_MS) if day not in days]
        # A few days a query: the rows read stay few while they are made into the cache's compact days.
        for part in (missing[i:i + FILL_DAYS] for i in range(0, len(missing), FILL_DAYS)):
            generation = cache.generation
            fetched = await _bucket_rows(cache.reader or ledger.reader, column, window, part[0], part[-1] + DAY_MS)
            by_day: dict[int, list] = {day: [] for day in part}
            for row in fetched:
                rows_of_day = by_day.get(row[0] - row[0] % DAY_MS)
                if rows_of_day is not None:
                    rows_of_day.append(row)
            del fetched
            if cache.generation != generation:  # a call landed in a past day while they were read: keep none
                break
            if not all(cache.put(key, day, rows_of_day) for day, rows_of_day in by_day.items()):
                break  # the cache is full (or a day held counts it cannot keep: read from the ledger)
    parts: list[Iterable[Row]] = []
    uncached: list[tuple[int, int]] = []
    for day in range(first, last, DAY_MS):
        if day in days:
            parts.append(days[day])
        elif uncached and uncached[-1][1] == day:
            uncached[-1] = (uncached[-1][0], day + DAY_MS)
        else:
            uncached.append((day, day + DAY_MS))
    if window.start < first:
        uncached.insert(0, (window.start, first))
    if last < window.end:
        uncached.append((max(last, window.start), window.end))
    for low, high in uncached:
        parts.append(await _bucket_rows(ledger.reader, column, window, low, high))
    return chain.from_iterable(parts)


def _minute_rows(minutes: MinuteUsage, group: str, start: int, account_id: str | None) -> list[Row]:
    """The hour range from memory, a row per minute, group and model."""
    folded: dict[tuple[int, str, str], list[int]] = {}
    for minute, account, key, model, *sums in minutes.rows(start, account_id):
        g = {"model": model, "key": key, "account": account}[group]
        row = folded.setdefault((minute, g, model), [0, 0, 0, 0, 0, 0])
        for i, value in enumerate(sums):
            row[i] += value
    return [(minute, g, model, *values) for (minute, g, model), values in folded.items()]


async def _labels(ledger: Ledger, keyring: KeyRing, group: str, keys: list[str]) -> dict[str, dict]:
    """A readable name for each group: the key's prefix and name, the account's email."""
    labels: dict[str, dict] = {}
    missing = []
    for g in keys:
        if g == OTHER:
            labels[g] = {"label": OTHER}
        elif group == "model":
            labels[g] = {"label": g}
        elif not g:
            labels[g] = {"label": "(no key)" if group == "key" else "(no account)"}
        elif group == "key" and g in keyring.keys:
            k = keyring.keys[g]
            labels[g] = {"label": k.prefix + (f" {k.name}" if k.name else ""), "account_id": k.account_id}
        elif group == "account" and g in keyring.accounts:
            labels[g] = {"label": keyring.accounts[g].email}
        else:
            missing.append(g)
    if missing:
        marks = ",".join("?" * len(missing))
        if group == "key":
            rows = await ledger.fetchall(f"SELECT id, prefix, name, account_id FROM api_keys WHERE id IN ({marks})", missing)
            for r in rows:
                labels[r["id"]] = {"label": r["prefix"] + (f" {r['name']}" if r["name"] else ""), "account_id": r["account_id"]}
        else:
            rows = await ledger.fetchall(f"SELECT id, email FROM accounts WHERE id IN ({marks})", missing)
            for r in rows:
                labels[r["id"]] = {"label": r["email"]}
        for g in missing:
            labels.setdefault(g, {"label": g})
    return labels


async def usage_series(
    *,
    ledger: Ledger,
    keyring: KeyRing,
    minutes: MinuteUsage,
    config: Config,
    now_ms: int,
    range_name: str,
    group: str,
    account_id: str | None = None,
    limit: int = 8,
    days: DayCache | None = None,
) -> dict:
    """The usage series document: buckets, one series per group (top `limit`, the rest folded), totals."""
    await ledger.settle()  # the rollups hold every committed call before they are read
    span = RANGES[range_name]
    window = span.window(now_ms)
    column = {"model": "model", "key": "key_id", "account": "account_id"}[group]
    source = "usage_daily" if window.bucket_ms == DAY_MS else "usage_hourly"  # whole days, or hours
    if span.name == "hour":
        rows = _minute_rows(minutes, group, window.start, account_id)
        source = "memory"
    elif account_id is None and days is not None:
        rows = await cached_rows(ledger, days, config, column, window, now_ms)
    else:
        rows = await _bucket_rows(ledger.reader, column, window, window.start, window.end, account_id)
    groups: dict[str, _Group] = {}
    unpriced: set[str] = set()
    total_cost = 0
    points = span.buckets
    start, bucket_ms = window.start, window.bucket_ms
    for t, g, model, requests, errors, prompt, completion, cost, unpriced_calls in rows:
        b = (t - start) // bucket_ms
        if not 0 <= b < points:
            continue
        entry = groups.get(g)
        if entry is None:
            entry = groups[g] = _Group(g, points)
        entry.requests[b] += requests
        entry.errors[b] += errors
        entry.prompt[b] += prompt
        entry.completion[b] += completion
        entry.costs[b] += int(cost)  # the cost of each call as metered, at the prices of its day
        total_cost += int(cost)
        if unpriced_calls:
            entry.unpriced.add(model)
            unpriced.add(model)
    ranked = sorted(groups.values(), key=lambda e: (-e.tokens, -sum(e.requests), e.key))
    shown = ranked[:limit]
    if len(ranked) > limit:
        other = _Group(OTHER, span.buckets)
        for entry in ranked[limit:]:
            other.absorb(entry)
        shown.append(other)
    labels = await _labels(ledger, keyring, group, [e.key for e in shown])
    series = []
    for entry in shown:
        series.append(
            {
                "key": entry.key,
                **labels.get(entry.key, {"label": entry.key}),
                "requests": entry.requests,
                "errors": entry.errors,
                "prompt_tokens": entry.prompt,
                "completion_tokens": entry.completion,
                "cost": [amount(c) for c in entry.costs],
                "totals": {
                    "requests": sum(entry.requests),
                    "errors": sum(entry.errors),
                    "prompt_tokens": sum(entry.prompt),
                    "completion_tokens": sum(entry.completion),
                    "cost": None if entry.unpriced and not entry.cost else amount(entry.cost),
                    "unpriced_models": sorted(entry.unpriced),
                },
            }
        )
    return {
        "range": span.name,
        "group": group,
        "account_id": account_id,
        "bucket_seconds": span.bucket_ms // 1000,
        "start": iso(window.start),
        "end": iso(window.end),
        "now": iso(now_ms),
        "currency": config.budgets.currency,
        "buckets": [iso(window.start + i * window.bucket_ms) for i in range(window.buckets)],
        "source": source,
        "series": series,
        "groups": len(groups),
        "totals": {
            "requests": sum(sum(e.requests) for e in groups.values()),
            "errors": sum(sum(e.errors) for e in groups.values()),
            "prompt_tokens": sum(sum(e.prompt) for e in groups.values()),
            "completion_tokens": sum(sum(e.completion) for e in groups.values()),
            "cost": amount(total_cost),
            "unpriced_models": sorted(unpriced),
            "priced": True,  # a price table ships; `unpriced_models` names what it misses
        },
    }


class QueryError(ValueError):
    """A usage-series query the caller got wrong; the message says what is allowed."""


def parse_query(query: Mapping[str, str], groups: tuple[str, ...] = GROUPS) -> tuple[str, str, int]:
    """(range, group, limit) from a request's query string; raises `QueryError`."""
    range_name = query.get("range", "day")
    if range_name not in RANGES:
        raise QueryError(f"`range` must be one of: {', '.join(RANGES)}.")
    group = query.get("group", "model")
    if group not in groups:
        raise QueryError(f"`group` must be one of: {', '.join(groups)}.")
    try:
        limit = int(query.get("limit", "8"))
    except ValueError:
        raise QueryError("`limit` must be a whole number.") from None
    if not 1 <= limit <= 50:
        raise QueryError("`limit` must be between 1 and 50.")
    return range_name, group, limit
