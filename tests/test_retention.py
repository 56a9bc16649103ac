"""Retention: usage events and per-account rollups past `[retention] usage_days` go — aged by a
ManualClock, not by sleeping — in small batches while calls keep flowing; routing aggregates stay."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from conftest import SIMULATOR_CONFIG
from privacy_helpers import chat_body, eventually_async

from noor_daemon.clock import ManualClock
from noor_daemon.ledger.usage import HOUR_MS, UsageEvent
from noor_daemon.privacy import retention
from noor_daemon.state import ACCOUNTS, LEDGER, PRIVACY

DAY = 86_400
START = 1_760_000_000.0  # a fixed moment, so hours and days fall the same way on every run


async def calls(daemon, key: str, n: int) -> list[tuple[int, float]]:
    """`n` concurrent chat calls through the gateway: (status, seconds) each."""
    async with aiohttp.ClientSession() as http:

        async def one() -> tuple[int, float]:
            started = time.perf_counter()
            async with http.post(
                f"{daemon.base_url}/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {key}"}
            ) as response:
                await response.read()
                return response.status, time.perf_counter() - started

        return await asyncio.gather(*(one() for _ in range(n)))


async def admin(daemon, method: str, path: str, **kwargs) -> dict:
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.request(method, f"{daemon.url}/admin/v1{path}", **kwargs) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def count(daemon, sql: str, *params) -> int:
    row = await daemon.app[LEDGER].fetchone(sql, params)
    return row[0]


async def test_old_usage_goes_younger_stays_while_calls_keep_flowing(start_daemon):
    clock = ManualClock(START)
    daemon = await start_daemon(clock=clock)
    key = await daemon.create_key("ret@example.org")
    account = await daemon.app[ACCOUNTS].get_account("ret@example.org")

    # Day 0: real calls through the gateway, plus a bulk of older rows so the job needs several batches.
    assert {s for s, _ in await calls(daemon, key, 10)} == {200}
    key_id = (await daemon.usage_rows())[0]["key_id"]
    bulk = [
        UsageEvent(ts=int(START * 1000) - i, model="sim-gpt", endpoint="chat/completions", status=200,
                   latency_ms=2.0, account_id=account.id, key_id=key_id, provider="simulator")
        for i in range(1, 4501)
    ]
    await daemon.app[LEDGER].append_usage(bulk)
    # Day 60: younger calls.
    clock.advance(60 * DAY)
    assert {s for s, _ in await calls(daemon, key, 10)} == {200}
    # Day 91: the day-0 rows are past the default 90 days; the day-60 ones are 31 days old.
    clock.advance(31 * DAY)
    cutoff_ms = int(clock.now() * 1000) - 90 * DAY * 1000
    old_hours = await count(daemon, "SELECT count(*) FROM usage_hourly WHERE hour <= ?", cutoff_ms - HOUR_MS)
    routes_before = await count(daemon, "SELECT count(*) FROM route_hourly")
    assert old_hours >= 1

    preview = await admin(daemon, "POST", "/privacy/retention/run", json={"dry_run": True})
    assert preview["dry_run"] is True
    assert preview["usage_events"] == 4510 and preview["usage_hourly"] == old_hours
    assert await count(daemon, "SELECT count(*) FROM usage_events") == 4520  # a dry run removes nothing

    daemon.app[PRIVACY].retention.batch = 500  # more batches, more chances to get in the way
    run = asyncio.create_task(admin(daemon, "POST", "/privacy/retention/run", json={"dry_run": False}))
    during = await calls(daemon, key, 40)
    report = await run
    assert {s for s, _ in during} == {200}
    assert max(seconds for _, seconds in during) < 5
    assert report["usage_events"] == 4510 and report["usage_hourly"] == old_hours
    assert report["batches"] >= 10

    rows = await daemon.usage_rows()
    assert len(rows) == 50  # the 10 younger calls and the 40 made during the run
    assert min(r["ts"] for r in rows) >= cutoff_ms
    assert await count(daemon, "SELECT count(*) FROM usage_hourly WHERE hour <= ?", cutoff_ms - HOUR_MS) == 0
    assert await count(daemon, "SELECT count(*) FROM usage_hourly") >= 1
    # Per provider and model, no account identity: kept for routing.
    assert await count(daemon, "SELECT count(*) FROM route_hourly") >= routes_before

    status = await admin(daemon, "GET", "/privacy/retention")
    assert status["usage_days"] == 90
    assert status["last_run"]["usage_events"] == 4510 and status["last_run"]["actor"] == "admin"
    entry = await daemon.app[LEDGER].fetchone("SELECT * FROM audit_log WHERE action = 'retention.ran' ORDER BY id DESC")
    assert entry["actor"] == "admin" and '"usage_events": 4510' in entry["details"]


async def test_it_runs_by_itself_at_start(start_daemon, tmp_path):
    data = tmp_path / "ledger"
    clock = ManualClock(START)
    first = await start_daemon(clock=clock, data_dir=data)
    key = await first.create_key("start@example.org")
    await calls(first, key, 5)
    await first.runner.cleanup()

    clock.advance(100 * DAY)
    second = await start_daemon(clock=clock, data_dir=data)
    job = second.app[PRIVACY].retention

    async def ran() -> bool:
        return job.last_run is not None and job.last_run["usage_events"] == 5

    await eventually_async(ran, what="the start-up run")
    assert await count(second, "SELECT count(*) FROM usage_events") == 0
    assert job.last_run["actor"] == "system"


async def test_it_runs_again_on_its_own_schedule(start_daemon, monkeypatch):
    monkeypatch.setattr(retention, "INTERVAL_S", 0.05)  # "hourly", shortened; the ageing is the clock's
    clock = ManualClock(START)
    daemon = await start_daemon(SIMULATOR_CONFIG + "\n[retention]\nusage_days = 7\n", clock=clock)
    key = await daemon.create_key("sched@example.org")
    await calls(daemon, key, 3)
    job = daemon.app[PRIVACY].retention
    await eventually_async(lambda: _true(job.last_run is not None), what="a first run")
    assert await count(daemon, "SELECT count(*) FROM usage_events") == 3

    clock.advance(8 * DAY)

    async def gone() -> bool:
        return await count(daemon, "SELECT count(*) FROM usage_events") == 0

    await eventually_async(gone, what="a scheduled run to remove the 8-day-old rows")
    assert job.usage_days == 7
    assert (await admin(daemon, "GET", "/privacy/retention"))["next_run_at"] is not None


async def _true(value: bool) -> bool:
    return value


async def test_export_holds_only_usage_within_retention(start_daemon):
    clock = ManualClock(START)
    daemon = await start_daemon(SIMULATOR_CONFIG + "\n[retention]\nusage_days = 30\n", clock=clock)
    key = await daemon.create_key("window@example.org")
    await calls(daemon, key, 2)
    clock.advance(31 * DAY)
    await calls(daemon, key, 3)
    export = await admin(daemon, "GET", "/accounts/window@example.org/export")
    assert len(export["usage_events"]) == 3  # not yet removed by a run, but past the window: not exported
    assert export["retention"]["usage_days"] == 30
