"""Reading the usage rollups over a span of time: whole days from `usage_daily`, the hours around them
from `usage_hourly`.

A day row holds the same sums as the day's 24 hourly rows (the batch commit writes both in one
transaction), so a month is ~30 rows per key and model instead of ~720. Only days retention cannot
be cutting into are read from `usage_daily`: from the first day that begins after the retention
cutoff (retention deletes a day row with the first of its hours). The partial days at either end,
and older hours, come from `usage_hourly`.
"""

from __future__ import annotations

from dataclasses import dataclass

from noor_daemon.ledger.usage import DAY_MS


@dataclass(frozen=True)
class Span:
    """A span from a start to the present: `days` (a [low, high) range of whole days, or None) and
    `hours` ([low, high) ranges; high None is open-ended)."""

    hours: tuple[tuple[int, int | None], ...]
    days: tuple[int, int] | None


def split(start_ms: int, now_ms: int, cutoff_ms: int) -> Span:
    """From `start_ms` (on an hour) onwards, seen at `now_ms`; `cutoff_ms` is the retention cutoff
    (rows older than it may be going)."""
    first = max(-(-start_ms // DAY_MS) * DAY_MS, cutoff_ms - cutoff_ms % DAY_MS + DAY_MS)
    today = now_ms - now_ms % DAY_MS
    if first >= today:
        return Span(((start_ms, None),), None)
    hours = ((start_ms, first),) if start_ms < first else ()
    return Span(hours + ((today, None),), (first, today))


def union(columns: str, span: Span, account_id: str | None = None, group_by: str | None = None) -> tuple[str, list]:
    """A `UNION ALL` of the span's rollup rows, to select from as a subquery.

    `columns` (and `group_by`, when each part should be summed before the union: fewer rows for
    the outer query to group again) are over either table's columns, with `{t}` for the time
    column (`hour` or `day`), e.g. "{t} - {t} % 86400000 AS day, model, sum(requests) AS requests".
    """
    parts: list[str] = []
    params: list = []
    ranges: list[tuple[str, str, int, int | None]] = [("usage_hourly", "hour", low, high) for low, high in span.hours]
    if span.days is not None:
        ranges.append(("usage_daily", "day", *span.days))
    for table, t, low, high in ranges:
        sql = f"SELECT {columns.format(t=t)} FROM {table} WHERE {t} >= ?"
        params.append(low)
        if high is not None:
            sql += f" AND {t} < ?"
            params.append(high)
        if account_id is not None:
            sql += " AND account_id = ?"
            params.append(account_id)
        if group_by is not None:
            sql += f" GROUP BY {group_by.format(t=t)}"
        parts.append(sql)
    return " UNION ALL ".join(parts), params
