"""Reading the usage rollups over a window (`domain/windows.py`): whole days from `usage_daily`, the hours
around them from `usage_hourly`.

A day row holds exactly the sums of that day's hourly rows (one writer keeps both, and deletions take
from both), so a month is ~30 rows per key and model instead of ~720, and any window — whatever hour
it starts at — reads the same totals as a direct count of `usage_events` over it.
"""

from __future__ import annotations

from noor_daemon.domain.windows import Window


def union(
    columns: str, window: Window, account_id: str | None = None, group_by: str | None = None, *, key_id: str | None = None
) -> tuple[str, list]:
    """A `UNION ALL` of the window's rollup rows, to select from as a subquery.

    `columns` (and `group_by`, when each part should be summed before the union: fewer rows for
    the outer query to group again) are over either table's columns, with `{t}` for the time
    column (`hour` or `day`), e.g. "{t} - {t} % 86400000 AS day, model, sum(requests) AS requests".
    """
    days, hours = window.split_days()
    ranges: list[tuple[str, str, int, int]] = [("usage_hourly", "hour", low, high) for low, high in hours]
    if days is not None:
        ranges.append(("usage_daily", "day", *days))
    parts: list[str] = []
    params: list = []
    for table, t, low, high in ranges:
        sql = f"SELECT {columns.format(t=t)} FROM {table} WHERE {t} >= ? AND {t} < ?"
        params += [low, high]
        if account_id is not None:
            sql += " AND account_id = ?"
            params.append(account_id)
        if key_id is not None:
            sql += " AND key_id = ?"
            params.append(key_id)
        if group_by is not None:
            sql += f" GROUP BY {group_by.format(t=t)}"
        parts.append(sql)
    return " UNION ALL ".join(parts), params
