"""Daily rollups: kept beside the hourly ones by the batch commit, read for whole days by the usage
summary and the day-bucket series; the answers are always those of the hourly rows."""

from __future__ import annotations

import asyncio

import aiohttp
from conftest import SIMULATOR_CONFIG

from noor_daemon.clock import ManualClock
from noor_daemon.domain.windows import last_days, last_hours
from noor_daemon.ledger import rollups
from noor_daemon.ledger.usage import DAY_MS, HOUR_MS, UsageEvent
from noor_daemon.state import ACCOUNTS, LEDGER, PRIVACY

START = 1_760_000_000.0 + 7 * 3600 + 1234.5  # a fixed moment, mid-day, so days fall the same way on every run
SUMS = "sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(latency_ms_sum)"


def test_a_window_reads_whole_days_from_the_daily_rows_and_the_rest_by_the_hour():
    now = 100 * DAY_MS + 5 * HOUR_MS + 123
    month = last_hours(now, 720)
    assert (month.start, month.end) == (70 * DAY_MS + 6 * HOUR_MS, 100 * DAY_MS + 6 * HOUR_MS)
    days, hours = month.split_days()
    assert days == (71 * DAY_MS, 100 * DAY_MS)
    assert hours == [(70 * DAY_MS + 6 * HOUR_MS, 71 * DAY_MS), (100 * DAY_MS, 100 * DAY_MS + 6 * HOUR_MS)]
    # A day: no whole day in it.
    assert last_hours(now, 24).split_days()[0] is None
    # Day windows are whole days, today included.
    assert last_days(now, 30).split_days() == ((71 * DAY_MS, 101 * DAY_MS), [])
    sql, params = rollups.union("model, {t}", month, "acct_1")
    assert sql.count("UNION ALL") == 2 and "FROM usage_daily WHERE day >= ? AND day < ?" in sql
    assert params == [70 * DAY_MS + 6 * HOUR_MS, 71 * DAY_MS, "acct_1", 100 * DAY_MS, 100 * DAY_MS + 6 * HOUR_MS, "acct_1",
                      71 * DAY_MS, 100 * DAY_MS, "acct_1"]


async def _get(daemon, path: str, **params) -> dict:
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.get(f"{daemon.url}/admin/v1{path}", params=params) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def test_daily_rollups_match_the_hourly_ones_through_traffic_and_retention(start_daemon):
    clock = ManualClock(START)
    daemon = await start_daemon(SIMULATOR_CONFIG + "\n[retention]\nusage_days = 20\n", clock=clock)
    for email in ("one@example.org", "two@example.org"):
        await daemon.create_key(email)
    store, ledger = daemon.app[ACCOUNTS], daemon.app[LEDGER]
    keys = await store.list_keys()
    now_ms = int(START * 1000)
    # The daemon's retention job runs once at start: let it finish first, or its deletions of old hours
    # could land between the rows written below (the next run is hours away).
    for _ in range(200):
        if daemon.app[PRIVACY].retention.last_run is not None:
            break
        await asyncio.sleep(0.01)
    assert daemon.app[PRIVACY].retention.last_run is not None
    for hours_ago in range(0, 30 * 24, 5):  # every fifth hour of the last 30 days, both keys, two models
        for i, key in enumerate(keys):
            await ledger.record(
                UsageEvent(ts=now_ms - hours_ago * HOUR_MS - i * 60_000, model=("m-a", "m-b")[hours_ago % 2],
                           endpoint="chat/completions", status=500 if hours_ago % 7 == 0 else 200,
                           latency_ms=10.5 + i, account_id=key.account_id, key_id=key.id, provider="simulator",
                           prompt_tokens=hours_ago, completion_tokens=i + 1)
            )

    async def daily_equals_hourly() -> None:
        by_hour = await ledger.fetchall(
            f"SELECT hour - hour % {DAY_MS} AS d, account_id, key_id, model, {SUMS} FROM usage_hourly "
            "GROUP BY d, account_id, key_id, model ORDER BY d, account_id, key_id, model"
        )
        by_day = await ledger.fetchall(
            f"SELECT day, account_id, key_id, model, {SUMS} FROM usage_daily "
            "GROUP BY day, account_id, key_id, model ORDER BY day, account_id, key_id, model"
        )
        rounded = lambda rows: [(*r[:8], round(r[8], 6)) for r in rows]  # noqa: E731 (float sums, subtracted)
        assert rounded(by_day) == rounded(by_hour) and by_day

    async def summaries_equal_hourly(hours: int, account: str | None = None) -> None:
        params = {"hours": str(hours)} | ({"account": account} if account else {})
        doc = await _get(daemon, "/usage/summary", **params)
        now = int(clock.now() * 1000)
        since = now - now % HOUR_MS - (hours - 1) * HOUR_MS
        sql = f"SELECT model, {SUMS} FROM usage_hourly WHERE hour >= ?"
        args: list = [since]
        if account:
            sql += " AND account_id = ?"
            args.append((await store.get_account(account)).id)
        rows = await ledger.fetchall(sql + " GROUP BY model ORDER BY model", tuple(args))
        expected = [[r[0], r[1], r[2], r[3], r[4], round(r[5] / r[1], 2)] for r in rows]
        got = [[m["model"], m["requests"], m["errors"], m["prompt_tokens"], m["completion_tokens"], m["mean_latency_ms"]]
               for m in doc["models"]]
        assert got == expected, (hours, account)

    await daily_equals_hourly()
    for hours in (1, 24, 48, 24 * 7, 24 * 30, 24 * 366):
        await summaries_equal_hourly(hours)
    await summaries_equal_hourly(24 * 30, "one@example.org")
    month = await _get(daemon, "/usage/series", range="30d", group="model", account="two@example.org")
    two = (await store.get_account("two@example.org")).id
    first_day = now_ms - now_ms % DAY_MS - 29 * DAY_MS
    expected = await ledger.fetchone("SELECT sum(requests) FROM usage_hourly WHERE account_id = ? AND hour >= ?", (two, first_day))
    assert month["totals"]["requests"] == expected[0] > 0

    # Retention (20 days) cuts on an hour: the day it cuts into keeps its later hours, and the totals still agree.
    report = await daemon.app[PRIVACY].retention.run()
    assert report["usage_hourly"] > 0
    oldest = (await ledger.fetchone("SELECT min(day) FROM usage_daily"))[0]
    cutoff = now_ms - now_ms % HOUR_MS - 20 * DAY_MS
    assert oldest == cutoff - cutoff % DAY_MS
    assert (await ledger.fetchone("SELECT min(hour) FROM usage_hourly"))[0] >= cutoff
    await daily_equals_hourly()
    for hours in (24 * 7, 24 * 19, 24 * 21, 24 * 30):
        await summaries_equal_hourly(hours)

    # An erased account leaves no daily row.
    await daemon.app[PRIVACY].delete_account("one@example.org")
    assert (await ledger.fetchone("SELECT count(*) FROM usage_daily WHERE account_id NOT IN (SELECT id FROM accounts)"))[0] == 0
    await daily_equals_hourly()


async def test_the_week_and_month_from_cached_days_match_the_ledger(start_daemon):
    """The week (3-hour buckets) and the month read whole past days from the day cache, the month's
    filled from `usage_daily`: the same answers as reading the hourly rows, before and after a late call."""
    from noor_daemon.state import KEYRING, LIVE, SETTINGS
    from noor_daemon.views.series import usage_series

    clock = ManualClock(START)
    daemon = await start_daemon(SIMULATOR_CONFIG, clock=clock)
    for email in ("one@example.org", "two@example.org"):
        await daemon.create_key(email)
    ledger = daemon.app[LEDGER]
    keys = await daemon.app[ACCOUNTS].list_keys()
    now_ms = int(START * 1000)

    async def call(ts: int, i: int) -> None:
        key = keys[i % len(keys)]
        await ledger.record(
            UsageEvent(ts=ts, model=("m-a", "m-b", "m-c")[i % 3], endpoint="chat/completions", status=200,
                       latency_ms=5.0, account_id=key.account_id, key_id=key.id, provider="simulator",
                       prompt_tokens=i % 17, completion_tokens=i % 5)
        )

    live = daemon.app[LIVE]
    await live.seeded.wait()
    for i, hours_ago in enumerate(range(0, 40 * 24, 7)):
        await call(now_ms - hours_ago * HOUR_MS, i)
    # The start-up warm-up may have read a day while these calls were landing in it (a fill racing a
    # late call is not what this test is about): start from an empty cache, once no fill is under way.
    async with live.days.filling:
        live.days.clear()

    async def compare() -> None:
        for range_name in ("7d", "30d", "90d"):
            for group in ("model", "key", "account"):
                common = dict(ledger=ledger, keyring=daemon.app[KEYRING], minutes=live.minutes,
                              config=daemon.app[SETTINGS].config.config, now_ms=int(clock.now() * 1000),
                              range_name=range_name, group=group)
                cached, direct = await usage_series(**common, days=live.days), await usage_series(**common)
                assert cached["series"] == direct["series"] and cached["totals"] == direct["totals"], (range_name, group)
                assert cached["totals"]["requests"] > 0

    await compare()
    assert live.days.days.get("model/10800000")  # the week's days are cached
    await compare()  # from the cache
    await call(now_ms - 3 * DAY_MS - 2 * HOUR_MS, 1)  # a late call in a cached day: read again
    await compare()
    clock.advance(2 * DAY_MS / 1000)  # the ranges move on; days leave the week
    await compare()
