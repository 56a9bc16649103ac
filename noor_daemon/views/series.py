"""Usage series: requests and tokens over time by model, key or account, with estimated cost.

Read by `/admin/v1/usage/series` and `/v1/me/usage` alike.

Ranges read the rollups, never raw rows: hours from `usage_hourly`, whole days of the 30- and
90-day ranges from `usage_daily` (through the day cache for the whole-ledger views); the hour
range, which needs minutes, reads the daemon's in-memory last hour (`live.MinuteUsage`). Costs come
from the config's `[prices."MODEL"]` table; a model without a price is listed as unpriced
rather than counted as free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from noor_daemon.clock import iso
from noor_daemon.config import Config
from noor_daemon.domain.money import cost_of, price_for
from noor_daemon.domain.accounts import KeyRing
from noor_daemon.ledger import rollups
from noor_daemon.ledger.database import Ledger
from noor_daemon.views.day_cache import DayCache
from noor_daemon.views.minutes import MinuteUsage

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Range:
    name: str
    bucket_ms: int
    buckets: int


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


class _Group:
    __slots__ = ("key", "requests", "errors", "prompt", "completion", "cost", "unpriced")

    def __init__(self, key: str, points: int) -> None:
        self.key = key
        self.requests = [0] * points
        self.errors = [0] * points
        self.prompt = [0] * points
        self.completion = [0] * points
        self.cost = 0.0
        self.unpriced: set[str] = set()

    @property
    def tokens(self) -> int:
        return sum(self.prompt) + sum(self.completion)

    def absorb(self, other: _Group) -> None:
        for mine, theirs in (
            (self.requests, other.requests), (self.errors, other.errors),
            (self.prompt, other.prompt), (self.completion, other.completion),
        ):
            for i, value in enumerate(theirs):
                mine[i] += value
        self.cost += other.cost
        self.unpriced |= other.unpriced


async def _hourly_rows(
    ledger: Ledger, column: str, start: int, bucket_ms: int, account_id: str | None
) -> list[tuple[int, str, str, int, int, int, int]]:
    sql = f"""SELECT (hour - ?) / ? AS b, {column} AS g, model, sum(requests), sum(errors),
                     sum(prompt_tokens), sum(completion_tokens)
              FROM usage_hourly WHERE hour >= ?"""
    params: list = [start, bucket_ms, start]
    if account_id is not None:
        sql += " AND account_id = ?"
        params.append(account_id)
    sql += " GROUP BY b, g, model"
    async with ledger.reader.execute(sql, params) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


def _by_time(rows) -> list[tuple[int, list]]:
    """Flat (t, g, model, sums…) rows as (t, [(g, model, sums…), …]) chunks, the form the series is
    folded from (a cached day is one chunk as it is kept: no per-row copy)."""
    chunks: dict[int, list] = {}
    for t, *rest in rows:
        chunk = chunks.get(t)
        if chunk is None:
            chunk = chunks[t] = []
        chunk.append(rest)
    return list(chunks.items())


async def _day_rows(
    ledger: Ledger, config: Config, column: str, start: int, now_ms: int, account_id: str | None
) -> list[tuple[int, str, str, int, int, int, int]]:
    """Daily rows from `start` (a day boundary) to now, as (day, g, model, sums…): whole days from
    `usage_daily`, today (and any day retention is cutting into) from `usage_hourly`."""
    cutoff = now_ms - config.retention.usage_days * DAY_MS
    union, params = rollups.union(
        f"{{t}} - {{t}} % {DAY_MS} AS day, {column} AS g, model, sum(requests) AS requests, sum(errors) AS errors, "
        "sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens",
        rollups.split(start, now_ms, cutoff),
        account_id,
        group_by=f"{{t}} - {{t}} % {DAY_MS}, {column}, model",
    )
    sql = f"""SELECT day, g, model, sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens)
              FROM ({union}) AS u GROUP BY day, g, model"""
    async with ledger.reader.execute(sql, params) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def cached_day_rows(
    ledger: Ledger, cache: DayCache, config: Config, column: str, start: int, now_ms: int
) -> list[tuple[int, list]]:
    """Daily rows from `start` (a day boundary) to now, as (day, [(g, model, sums…), …]) chunks: whole
    past days from the cache as they are kept (filled from `usage_daily` as needed), the recent ones
    straight from the ledger."""
    days = cache.get(column)
    cutoff = now_ms - config.retention.usage_days * DAY_MS
    kept = cutoff - cutoff % DAY_MS + DAY_MS  # the day retention cuts into is never cached
    first = max(start, kept)
    complete = now_ms - HOUR_MS
    last = complete - complete % DAY_MS  # days before this one ended at least an hour ago
    cache.prune(kept)
    async with cache.filling:
        missing = [day for day in range(first, last, DAY_MS) if day not in days]
        if missing:
            # Days from `kept` on are whole in `usage_daily` (retention has not reached them).
            sql = f"""SELECT day, {column} AS g, model, sum(requests), sum(errors),
                             sum(prompt_tokens), sum(completion_tokens)
                      FROM usage_daily WHERE day >= ? AND day < ? GROUP BY day, g, model"""
            async with (cache.reader or ledger.reader).execute(sql, (missing[0], missing[-1] + DAY_MS)) as cursor:
                fetched = await cursor.fetchall()
            by_day: dict[int, list] = {day: [] for day in missing}
            for day, g, model, *sums in fetched:
                if day in by_day:
                    by_day[day].append((g, model, *sums))
            for day, rows in by_day.items():
                if not cache.put(column, day, rows):
                    break
    chunks: list[tuple[int, list]] = []
    uncached: list[tuple[int, int]] = []
    for day in range(start, last, DAY_MS):
        if day in days:
            chunks.append((day, days[day]))
        else:
            uncached.append((day, day + DAY_MS))
    uncached.append((max(start, last), now_ms + HOUR_MS))
    rows: list = []
    for low, high in uncached:
        sql = f"""SELECT hour - hour % {DAY_MS} AS day, {column} AS g, model, sum(requests), sum(errors),
                         sum(prompt_tokens), sum(completion_tokens)
                  FROM usage_hourly WHERE hour >= ? AND hour < ? GROUP BY day, g, model"""
        async with ledger.reader.execute(sql, (low, high)) as cursor:
            rows.extend(await cursor.fetchall())
    return chunks + _by_time(rows)


async def cached_bucket_rows(
    ledger: Ledger, cache: DayCache, config: Config, column: str, start: int, now_ms: int, bucket_ms: int
) -> list[tuple[int, str, str, int, int, int, int]]:
    """Rows in buckets shorter than a day (`bucket_ms` divides a day) from `start` to now, as (bucket
    start, g, model, sums…): the buckets of whole past days from the day cache (each day read once from
    `usage_hourly`), the first partial day and the last day straight from the ledger. The week range
    reads a day and a half of hourly rows instead of seven."""
    key = f"{column}/{bucket_ms}"
    days = cache.get(key)
    cutoff = now_ms - config.retention.usage_days * DAY_MS
    kept = cutoff - cutoff % DAY_MS + DAY_MS
    first = max(-(-start // DAY_MS) * DAY_MS, kept)
    complete = now_ms - HOUR_MS
    last = complete - complete % DAY_MS
    cache.prune(kept)
    sql = f"""SELECT hour - hour % {bucket_ms} AS b, {column} AS g, model, sum(requests), sum(errors),
                     sum(prompt_tokens), sum(completion_tokens)
              FROM usage_hourly WHERE hour >= ? AND hour < ? GROUP BY b, g, model"""
    async with cache.filling:
        for day in [d for d in days if d < first]:  # out of the range for good: the range only moves on
            cache.put(key, day, [])
            del days[day]
        missing = [day for day in range(first, last, DAY_MS) if day not in days]
        if missing:
            async with (cache.reader or ledger.reader).execute(sql, (missing[0], missing[-1] + DAY_MS)) as cursor:
                fetched = await cursor.fetchall()
            by_day: dict[int, list] = {day: [] for day in missing}
            for row in fetched:
                rows_of_day = by_day.get(row[0] - row[0] % DAY_MS)
                if rows_of_day is not None:
                    rows_of_day.append(tuple(row))
            for day, rows_of_day in by_day.items():
                if not cache.put(key, day, rows_of_day):
                    break
    rows: list[tuple[int, str, str, int, int, int, int]] = []
    uncached: list[tuple[int, int]] = [(start, min(first, last))] if start < min(first, last) else []
    for day in range(first, last, DAY_MS):
        if day in days:
            rows.extend(days[day])
        else:
            uncached.append((day, day + DAY_MS))
    uncached.append((max(start, last), now_ms + HOUR_MS))
    for low, high in uncached:
        async with ledger.reader.execute(sql, (low, high)) as cursor:
            rows.extend(tuple(r) for r in await cursor.fetchall())
    return rows


def _minute_rows(
    minutes: MinuteUsage, group: str, start: int, account_id: str | None
) -> list[tuple[int, str, str, int, int, int, int]]:
    folded: dict[tuple[int, str, str], list[int]] = {}
    for minute, account, key, model, requests, errors, prompt, completion in minutes.rows(start, account_id):
        g = {"model": model, "key": key, "account": account}[group]
        row = folded.setdefault(((minute - start) // MINUTE_MS, g, model), [0, 0, 0, 0])
        row[0] += requests
        row[1] += errors
        row[2] += prompt
        row[3] += completion
    return [(b, g, model, *values) for (b, g, model), values in folded.items()]


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
    span = RANGES[range_name]
    last = now_ms - now_ms % span.bucket_ms
    start = last - (span.buckets - 1) * span.bucket_ms
    column = {"model": "model", "key": "key_id", "account": "account_id"}[group]
    source = "usage_hourly"
    if span.name == "hour":
        chunks = _by_time(_minute_rows(minutes, group, start, account_id))
        source = "memory"
    elif span.bucket_ms == DAY_MS:
        if account_id is None and days is not None:
            daily = await cached_day_rows(ledger, days, config, column, start, now_ms)
        else:
            daily = _by_time(await _day_rows(ledger, config, column, start, now_ms, account_id))
        chunks = [((day - start) // DAY_MS, rows) for day, rows in daily]
    elif span.name == "7d" and account_id is None and days is not None:
        bucketed = _by_time(await cached_bucket_rows(ledger, days, config, column, start, now_ms, span.bucket_ms))
        chunks = [((b - start) // span.bucket_ms, rows) for b, rows in bucketed]
    else:
        chunks = _by_time(await _hourly_rows(ledger, column, start, span.bucket_ms, account_id))
    groups: dict[str, _Group] = {}
    tokens: dict[tuple[str, str], list[int]] = {}
    """(group, model) → [prompt, completion]: priced once per pair rather than once per row."""
    points = span.buckets
    for b, rows in chunks:
        if not 0 <= b < points:
            continue
        for g, model, requests, errors, prompt, completion in rows:
            entry = groups.get(g)
            if entry is None:
                entry = groups[g] = _Group(g, points)
            entry.requests[b] += requests
            entry.errors[b] += errors
            entry.prompt[b] += prompt
            entry.completion[b] += completion
            pair = tokens.get((g, model))
            if pair is None:
                tokens[(g, model)] = [prompt, completion]
            else:
                pair[0] += prompt
                pair[1] += completion
    unpriced: set[str] = set()
    total_cost = 0.0
    for (g, model), (prompt, completion) in tokens.items():
        cost = cost_of(price_for(config.prices, model), prompt, completion)
        entry = groups[g]
        if cost is None:
            if prompt or completion:
                entry.unpriced.add(model)
                unpriced.add(model)
        else:
            entry.cost += cost
            total_cost += cost
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
                "totals": {
                    "requests": sum(entry.requests),
                    "errors": sum(entry.errors),
                    "prompt_tokens": sum(entry.prompt),
                    "completion_tokens": sum(entry.completion),
                    "cost": None if entry.unpriced and not entry.cost else round(entry.cost, 6),
                    "unpriced_models": sorted(entry.unpriced),
                },
            }
        )
    return {
        "range": span.name,
        "group": group,
        "account_id": account_id,
        "bucket_seconds": span.bucket_ms // 1000,
        "start": iso(start),
        "end": iso(last + span.bucket_ms),
        "now": iso(now_ms),
        "buckets": [iso(start + i * span.bucket_ms) for i in range(span.buckets)],
        "source": source,
        "series": series,
        "groups": len(groups),
        "totals": {
            "requests": sum(sum(e.requests) for e in groups.values()),
            "errors": sum(sum(e.errors) for e in groups.values()),
            "prompt_tokens": sum(sum(e.prompt) for e in groups.values()),
            "completion_tokens": sum(sum(e.completion) for e in groups.values()),
            "cost": round(total_cost, 6),
            "unpriced_models": sorted(unpriced),
            "priced": bool(config.prices),
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
