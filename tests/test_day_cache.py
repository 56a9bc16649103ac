"""The day cache keeps past days compactly and gives back exactly the rows it was given."""

from __future__ import annotations

import gc
import tracemalloc

from noor_daemon.views.day_cache import DayCache

DAY = 86_400_000


def rollup_rows(day: int, keys: int, models: int) -> list[tuple]:
    """Rows as SQLite hands them over: every name a string object of its own."""
    return [
        (day + 3 * 3_600_000 * (i % 8), "".join(["key-", str(k), "-", "x" * 24]), "".join(["model-", str(m)]),
         1 + i, i % 3, 1000 * i, 7 * i, 123_456_789_000 * i, i % 2)
        for i, (k, m) in enumerate((k, m) for k in range(keys) for m in range(models))
    ]


def test_a_kept_day_gives_back_its_rows() -> None:
    cache = DayCache()
    rows = rollup_rows(10 * DAY, 4, 3) + [
        (10 * DAY, None, "gpt-x", 1, 0, 2, 3, 0, 0),  # a call without a key
        (10 * DAY, "k", "m", 2**31, 0, 2**40, 2**40, 2**63 - 1, 0),  # the biggest counts SQLite can sum
    ]
    assert cache.put("key_id/86400000", 10 * DAY, rows)
    kept = cache.get("key_id/86400000")[10 * DAY]
    assert list(kept) == rows
    assert len(kept) == cache.rows == len(rows)


def test_a_day_whose_counts_do_not_fit_is_not_kept() -> None:
    cache = DayCache()
    assert cache.put("model/86400000", DAY, rollup_rows(DAY, 1, 2))
    assert not cache.put("model/86400000", 2 * DAY, [(2 * DAY, "m", "m", 1, 0, 1, 1, 2**64, 0)])
    assert not cache.put("model/86400000", 3 * DAY, [(3 * DAY, "m", "m", 1, 0, 1.5, 1, 0, 0)])
    assert sorted(cache.get("model/86400000")) == [DAY]  # read from the ledger each time instead
    assert cache.rows == 2


def test_replacing_and_forgetting_days_keeps_the_count() -> None:
    cache = DayCache()
    cache.put("model/86400000", DAY, rollup_rows(DAY, 2, 2))
    cache.put("model/86400000", DAY, rollup_rows(DAY, 1, 2))
    assert cache.rows == 2
    cache.put("key_id/86400000", DAY, rollup_rows(DAY, 3, 1))
    cache.forget_days({DAY})
    assert cache.rows == 0 and not cache.holds_any()


def test_kept_rows_take_under_a_hundred_bytes_each() -> None:
    """90 days by key over 40 keys and 5 models: as tuples of Python objects ~420 bytes a row (7.6 MB), here ~70."""
    cache = DayCache()
    gc.collect()
    tracemalloc.start()
    try:
        for d in range(90):  # the rows as read, made while measuring: what outlives them is what the cache keeps
            assert cache.put("key_id/86400000", d * DAY, rollup_rows(d * DAY, 40, 5))
        gc.collect()
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert cache.rows == 90 * 200
    assert used / cache.rows < 100, f"{used / cache.rows:.0f} bytes a kept row"
