"""Numbers that agree everywhere: every view of usage equals a direct count of `usage_events`.

A property test writes generated usage over ~100 days through the ledger's one writer (bulk and the
group commit alike), at generated moments around midnights, month ends and a leap day, applies
retention and an erasure, and then asks every view: the usage summary over several spans, the series
at every range and grouping (from the day cache and straight from the ledger), the quota counters
(kept live and loaded afresh), the billing document's month and the Stripe meter's closed hours, and
the data export. Each must equal what the remaining events say, on SQLite and on PostgreSQL; and
`noor ledger verify` must find the rollups equal to the events.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pg_helpers
import pytest
from aiohttp import web
from conftest import ADMIN_TOKEN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noor_daemon import config as config_module
from noor_daemon.app import create_app
from noor_daemon.billing.meter import MAX_AGE_MS as METER_MAX_AGE_MS
from noor_daemon.billing.meter import MeterOutbox
from noor_daemon.clock import ManualClock
from noor_daemon.domain.windows import DAY_MS, HOUR_MS, calendar_period, closed_hours, last_hours, retention_cutoff
from noor_daemon.ledger.usage import RouteSample, UsageEvent
from noor_daemon.ledger.verify import verify
from noor_daemon.limits.periods import PeriodCounters
from noor_daemon.server import GatewayRunner
from noor_daemon.settings import DaemonSettings
from noor_daemon.state import ACCOUNTS, AUDIT, BILLING, KEYRING, LEDGER, LIMITER, LIVE, PRIVACY, SETTINGS
from noor_daemon.views.series import RANGES, usage_series

pytestmark = pytest.mark.engine_independent

CONFIG = """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "m-a"
routes = [{ provider = "simulator" }]

[[models]]
name = "m-b"
routes = [{ provider = "simulator" }]

[prices."m-a"]
input_per_million = 1.0
output_per_million = 2.0

[retention]
usage_days = {days}
"""


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


MOMENTS = [
    _ms("2028-02-29T23:40:00"),  # a leap day, before midnight
    _ms("2028-03-01T00:20:00"),  # just after it, a new month
    _ms("2026-12-31T23:59:30"),  # a year's end
    _ms("2027-01-01T00:00:00"),  # midnight exactly
    _ms("2026-11-30T00:59:59"),  # a month's last day, first hour
    _ms("2026-06-15T12:34:56"),  # mid-day, mid-month
]
MODELS = ("m-a", "m-b")
SPAN_MS = 100 * DAY_MS

_EVENT = st.tuples(
    st.integers(0, SPAN_MS - 1),  # how long before now
    st.integers(0, 2),  # which key (0, 1: account one; 2: account two; erased account: three)
    st.sampled_from(MODELS),
    st.sampled_from([200, 200, 200, 429, 500]),
    st.integers(0, 500),
    st.integers(0, 300),
    st.booleans(),  # written by the group commit (record) rather than in bulk
)


async def _scenario(engine: str, moment: int, later_ms: int, retention_days: int, events: list, erased: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if engine == "postgresql":
            async with pg_helpers.fresh_database() as url:
                await _run(Path(tmp), url, moment, later_ms, retention_days, events, erased)
        else:
            await _run(Path(tmp), None, moment, later_ms, retention_days, events, erased)


async def _run(data: Path, url: str | None, moment: int, later_ms: int, retention_days: int, events: list, erased: list):
    text = CONFIG.replace("{days}", str(retention_days)) + (f'\n[storage]\nurl = "{url}"\n' if url else "")
    loaded = config_module.LoadedConfig(config_module.parse(text, "numbers.toml"), None)
    clock = ManualClock(moment / 1000)
    app = create_app(DaemonSettings(loaded, data / "data", ADMIN_TOKEN, "test", clock))
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/admin/v1"  # type: ignore[union-attr]
    try:
        await _check(app, base, clock, moment, later_ms, events, erased)
    finally:
        await runner.cleanup()


async def _check(app, base: str, clock: ManualClock, moment: int, later_ms: int, events: list, erased: list) -> None:
    store, ledger = app[ACCOUNTS], app[LEDGER]
    await _wait_for_start(app)
    accounts = [await store.create_account(f"{who}@example.org", "free") for who in ("one", "two", "three")]
    keys = [
        (await store.create_key(accounts[0].id)).key, (await store.create_key(accounts[0].id)).key,
        (await store.create_key(accounts[1].id)).key, (await store.create_key(accounts[2].id)).key,
    ]

    def event(ago: int, key, model: str, status: int, prompt: int, completion: int) -> UsageEvent:
        ok = status < 400
        return UsageEvent(ts=moment - ago, model=model, endpoint="chat/completions", status=status, latency_ms=1.5 + ago % 7,
                          account_id=key.account_id, key_id=key.id, provider="simulator", prompt_tokens=prompt if ok else 0,
                          completion_tokens=completion if ok else 0, ttft_ms=3.25 if ago % 2 else None)

    bulk = [event(ago, keys[k], m, s, p, c) for ago, k, m, s, p, c, live in events if not live]
    bulk += [event(ago, keys[3], m, s, p, c) for ago, m, s, p, c in erased]
    await ledger.append_usage(bulk, [RouteSample(moment - ago, "simulator", m, 502, 9.0) for ago, _, m, *_ in events[:5]])
    for ago, k, m, s, p, c, live in events:
        if live:
            await ledger.record(event(ago, keys[k], m, s, p, c))
    await _views_agree(app, base, clock, accounts[:3])
    # Time passes (it may cross a midnight or a month's end), then retention and an erasure.
    clock.advance(later_ms / 1000)
    await app[PRIVACY].retention.run()
    await app[PRIVACY].delete_account(accounts[2].id)
    await _views_agree(app, base, clock, accounts[:2], erased=accounts[2].id)


async def _views_agree(app, base: str, clock: ManualClock, accounts: list, erased: str | None = None) -> None:
    ledger = app[LEDGER]
    now = int(clock.now() * 1000)
    rows = [tuple(r) for r in await ledger.fetchall(
        "SELECT ts, account_id, key_id, model, status, prompt_tokens, completion_tokens FROM usage_events"
    )]
    assert all(r[1] != erased for r in rows)
    assert erased is None or all(r[0] >= - now % HOUR_MS - app[SETTINGS].config.config.retention.usage_days * DAY_MS for r in rows)

    def count(where) -> tuple[int, int, int, int]:
        picked = [r for r in rows if where(r)]
        return (len(picked), sum(r[4] >= 400 for r in picked), sum(r[5] for r in picked), sum(r[6] for r in picked))

    # The rollups are what the events say.
    report = await verify(ledger)
    assert report.ok, [d.json() for d in report.differences[:5]]

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        # The usage summary over the last N hours.
        for hours in (1, 24, 24 * 7, 24 * 30, 24 * 90, 24 * 120):
            window = last_hours(now, hours)
            async with http.get(f"{base}/usage/summary", params={"hours": str(hours)}) as response:
                doc = await response.json()
            for model in MODELS:
                got = next(((m["requests"], m["errors"], m["prompt_tokens"], m["completion_tokens"])
                            for m in doc["models"] if m["model"] == model), (0, 0, 0, 0))
                assert got == count(lambda r, model=model: r[3] == model and window.start <= r[0] < window.end), (hours, model)

        # The series at every range (but the hour's, kept in memory from live calls) and grouping,
        # from the day cache and straight from the ledger, twice (the second time from a warm cache).
        live = app[LIVE]
        config = app[SETTINGS].config.config
        columns = {"model": 3, "key": 2, "account": 1}
        for _ in range(2):
            for name in ("day", "7d", "30d", "90d"):
                window = RANGES[name].window(now)
                for group, column in columns.items():
                    common = dict(ledger=ledger, keyring=app[KEYRING], minutes=live.minutes, config=config, now_ms=now,
                                  range_name=name, group=group, limit=50)
                    for doc in (await usage_series(**common, days=live.days), await usage_series(**common)):
                        present = {(r[column] or "") for r in rows if window.start <= r[0] < window.end}
                        assert {s["key"] for s in doc["series"]} == present, (name, group)
                        for series in doc["series"]:
                            for b in range(window.buckets):
                                low = window.start + b * window.bucket_ms
                                expected = count(lambda r, k=series["key"], lo=low: (r[column] or "") == k
                                                 and lo <= r[0] < lo + window.bucket_ms)
                                got = (series["requests"][b], series["errors"][b], series["prompt_tokens"][b],
                                       series["completion_tokens"][b])
                                assert got == expected, (name, group, series["key"], b)
                        totals = doc["totals"]
                        assert (totals["requests"], totals["errors"], totals["prompt_tokens"], totals["completion_tokens"]) \
                            == count(lambda r, w=window: w.start <= r[0] < w.end), (name, group)

        # Quotas: the counters kept live from commits, and loaded afresh (a restart), for each period.
        fresh = PeriodCounters(clock)
        await fresh.load(ledger)
        for counters in (app[LIMITER].counters, fresh):
            for account in accounts:
                for kind in ("day", "month"):
                    period = calendar_period(kind, now)
                    used = count(lambda r, a=account.id, p=period: r[1] == a and p.start <= r[0] < p.end)
                    assert counters.used("account", account.id, kind) == (used[0] - used[1], used[2] + used[3]), kind

        # Billing: the account's month, and the meter's closed hours.
        for account in accounts:
            document = await app[BILLING].account_document(app[KEYRING].accounts[account.id], links={})
            month = calendar_period("month", now)
            expected = count(lambda r, a=account.id: r[1] == a and month.start <= r[0] < month.end)
            usage = document["usage"]
            assert (usage["requests"], usage["errors"], usage["prompt_tokens"], usage["completion_tokens"]) == expected
        async def fresh_meter(db) -> None:  # this check's own fill only
            await db.execute("DELETE FROM billing_meter_outbox")
            await db.execute("DELETE FROM billing_state")

        await ledger.write(fresh_meter)
        meter = MeterOutbox(ledger, clock, None, app[AUDIT], value="tokens", delay_seconds=300)  # type: ignore[arg-type]
        await meter.fill()
        queued = {(r[0], r[1]): r[2] for r in await ledger.fetchall(
            "SELECT account_id, window_start, sum(value) FROM billing_meter_outbox GROUP BY account_id, window_start"
        )}
        end = closed_hours(now, 300_000)
        oldest = (now - METER_MAX_AGE_MS) - (now - METER_MAX_AGE_MS) % HOUR_MS  # Stripe takes events this old at most
        hours = {(r[1], r[0] - r[0] % HOUR_MS) for r in rows if oldest <= r[0] < end}
        expected_meter = {h: sum(r[5] + r[6] for r in rows if (r[1], r[0] - r[0] % HOUR_MS) == h) for h in hours}
        assert queued == {h: v for h, v in expected_meter.items() if v}

        # The export: every event of the account within retention, in JSON and in CSV.
        kept = retention_cutoff(now, app[SETTINGS].config.config.retention.usage_days)
        for account in accounts:
            async with http.get(f"{base}/accounts/{account.id}/export", params={"format": "csv"}) as response:
                lines = list(csv.reader(io.StringIO(await response.text())))
            assert len(lines) - 1 == count(lambda r, a=account.id: r[1] == a and r[0] >= kept)[0]
            async with http.get(f"{base}/accounts/{account.id}/export", params={"format": "json"}) as response:
                exported = await response.json()
            assert len(exported["usage_events"]) == count(lambda r, a=account.id: r[1] == a and r[0] >= kept)[0]


async def _wait_for_start(app) -> None:
    """The start-up retention run must not land between the rows the scenario writes."""
    for _ in range(500):
        if app[PRIVACY].retention.last_run is not None and app[LIVE].seeded.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the daemon's start-up jobs did not finish")


def _property(engine: str, examples: int):
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(
        moment=st.sampled_from(MOMENTS),
        later_ms=st.sampled_from([0, 20 * 60_000, 3 * HOUR_MS, DAY_MS + 7 * 60_000]),
        retention_days=st.sampled_from([35, 60, 90]),
        events=st.lists(_EVENT, min_size=1, max_size=60),
        erased=st.lists(st.tuples(st.integers(0, SPAN_MS - 1), st.sampled_from(MODELS), st.just(200),
                                  st.integers(0, 50), st.integers(0, 50)), max_size=10),
    )
    def check(moment, later_ms, retention_days, events, erased):
        asyncio.run(_scenario(engine, moment, later_ms, retention_days, events, erased))

    return check


def test_every_view_equals_the_events_on_sqlite() -> None:
    _property("sqlite", 30)()


def test_every_view_equals_the_events_on_postgresql() -> None:
    if not asyncio.run(pg_helpers.available()):
        pytest.skip("PostgreSQL is not reachable")
    _property("postgresql", 10)()
