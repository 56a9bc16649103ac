"""The admin endpoints behind the dashboard: the live event feed, the overview, upstream health, usage series."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from conftest import SIMULATOR_CONFIG

from noor_daemon.clock import ManualClock
from noor_daemon.domain.accounts import KeyRing
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.state import LIVE
from noor_daemon.views.live import NBINS, EventFeed, MetricsWindow, _bin, percentile

CANARY = "CANARY-dashboard-7f3a"

PRICED_CONFIG = SIMULATOR_CONFIG + """
[prices."sim-gpt"]
input_per_million = 2.0
output_per_million = 8.0

[prices."sim-c*"]
input_per_million = 1.0
output_per_million = 1.0
"""


async def chat(http: aiohttp.ClientSession, daemon, key: str, model: str = "sim-gpt", content: str = "hello") -> int:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8}
    async with http.post(f"{daemon.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status


async def admin_get(http: aiohttp.ClientSession, daemon, path: str, **params) -> dict:
    async with http.get(f"{daemon.url}/admin/v1{path}", params=params, headers=daemon.admin_headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def read_sse(response: aiohttp.ClientResponse, count: int, timeout: float = 5.0) -> list[tuple[str, dict]]:
    """The next `count` events of a stream as (event name, data)."""
    events: list[tuple[str, dict]] = []
    name, data = "message", ""

    async def pump() -> None:
        nonlocal name, data
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    events.append((name, json.loads(data)))
                    if len(events) >= count:
                        return
                name, data = "message", ""
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()

    await asyncio.wait_for(pump(), timeout)
    return events


async def test_event_feed_streams_calls_without_content(daemon) -> None:
    key = await daemon.create_key("feed@example.com")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/events", headers=daemon.admin_headers) as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert await chat(http, daemon, key, content=CANARY) == 200
            assert await chat(http, daemon, "sk-noor-" + "x" * 40) == 401
            events = await read_sse(stream, 2)
    (kind, first), (_, second) = events
    assert kind == "call"
    assert first["model"] == "sim-gpt" and first["status"] == 200 and first["provider"] == "simulator"
    assert first["account_id"].startswith("acct_") and key.startswith(first["key_prefix"])
    assert first["prompt_tokens"] > 0 and first["completion_tokens"] > 0 and first["latency_ms"] >= 0
    assert set(first) >= {"ts", "endpoint", "ttft_ms"}
    assert second["status"] == 401 and second["account_id"] is None
    text = json.dumps(events)
    assert CANARY not in text and "@" not in text and key not in text


async def test_event_feed_replays_backlog_and_resumes(daemon) -> None:
    key = await daemon.create_key()
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            await chat(http, daemon, key)
        async with http.get(f"{daemon.url}/admin/v1/events", headers=daemon.admin_headers) as stream:
            backlog = await read_sse(stream, 3)
        assert [e["seq"] for _, e in backlog] == [1, 2, 3]
        headers = {**daemon.admin_headers, "Last-Event-ID": "2"}
        await chat(http, daemon, key)
        async with http.get(f"{daemon.url}/admin/v1/events", headers=headers) as stream:
            resumed = await read_sse(stream, 2)
        assert [e["seq"] for _, e in resumed] == [3, 4]
        async with http.get(f"{daemon.url}/admin/v1/events?backlog=0", headers=daemon.admin_headers) as stream:
            await chat(http, daemon, key)
            fresh = await read_sse(stream, 1)
        assert fresh[0][1]["seq"] == 5


async def test_event_feed_needs_the_admin_token(daemon) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/events") as r:
            assert r.status == 401


def test_a_slow_subscriber_drops_instead_of_blocking() -> None:
    async def scenario() -> None:
        keyring = KeyRing()
        feed = EventFeed(keyring, queue_size=4)
        slow = feed.subscribe(backlog=0)
        events = [UsageEvent(ts=1, model="m", endpoint="chat", status=200, latency_ms=1.0) for _ in range(10)]
        feed.publish(events)  # returns at once although nobody reads
        assert slow.queue.qsize() == 4 and slow.dropped == 6 and feed.dropped == 6
        slow.close()
        items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        assert items[-1] is None

    asyncio.run(scenario())


async def test_streams_close_at_shutdown(start_daemon) -> None:
    daemon = await start_daemon()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/events", headers=daemon.admin_headers) as stream:
            await stream.content.readline()
            await asyncio.wait_for(daemon.runner.cleanup(), 5)  # would wait for shutdown_timeout if the stream stayed open
            rest = await asyncio.wait_for(stream.content.read(), 5)
            assert rest is not None
    assert not daemon.app[LIVE].feed.subscribers


def test_percentiles_from_histograms() -> None:
    hist = [0] * NBINS
    for value in [10.0] * 50 + [100.0] * 45 + [1000.0] * 5:
        hist[_bin(value)] += 1
    assert 8 <= percentile(hist, 0.5) <= 12
    assert 80 <= percentile(hist, 0.95) <= 120
    assert percentile([0] * NBINS, 0.5) is None


def test_metrics_window_rates_and_expiry() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    window = MetricsWindow(clock)
    now_ms = int(clock.now() * 1000)
    window.add(
        [UsageEvent(ts=now_ms - 5_000, model="m", endpoint="chat", status=200, latency_ms=100.0, prompt_tokens=10, completion_tokens=20)] * 30
        + [UsageEvent(ts=now_ms - 5_000, model="m", endpoint="chat", status=500, latency_ms=1000.0)] * 10
    )
    report = window.report(3600, 60)
    assert len(report["series"]["rpm"]) == 60
    assert report["window"]["requests"] == 40 and report["window"]["errors"] == 10
    assert report["window"]["error_rate"] == 0.25
    assert report["last_minute"]["requests"] == 40
    assert 80 <= report["window"]["latency_p50_ms"] <= 120
    assert report["window"]["latency_p95_ms"] >= 800
    clock.advance(3700)
    assert window.report()["window"]["requests"] == 0 and not window.buckets


async def test_overview_moves_with_traffic(daemon) -> None:
    key = await daemon.create_key()
    async with aiohttp.ClientSession() as http:
        before = await admin_get(http, daemon, "/overview", window=600, step=10)
        assert before["step_seconds"] == 10 and len(before["series"]["rpm"]) == 60
        assert before["window"]["requests"] == 0
        for _ in range(5):
            await chat(http, daemon, key)
        await chat(http, daemon, "sk-noor-" + "y" * 40)
        after = await admin_get(http, daemon, "/overview")
    assert after["window"]["requests"] == 6 and after["window"]["errors"] == 1
    assert after["last_minute"]["rpm"] > 0 and after["last_minute"]["tpm"] > 0
    assert after["window"]["latency_p50_ms"] is not None
    assert sum(after["series"]["requests"]) == 6


async def test_overview_rejects_bad_steps(daemon) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/overview?step=7", headers=daemon.admin_headers) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"


async def test_upstream_health(daemon) -> None:
    key = await daemon.create_key()
    async with aiohttp.ClientSession() as http:
        idle = await admin_get(http, daemon, "/upstreams")
        assert [p["name"] for p in idle["providers"]] == ["simulator"]
        assert idle["providers"][0]["state"] == "idle"
        await chat(http, daemon, key)
        health = await admin_get(http, daemon, "/upstreams")
    sim = health["providers"][0]
    assert sim["requests"] == 1 and sim["errors"] == 0 and sim["state"] == "ok" and sim["latency_ms"] is not None
    route = next(r for r in health["routes"] if r["model"] == "sim-gpt")
    assert route["requests"] == 1 and route["error_rate"] == 0


async def test_usage_series_by_model_key_and_account(start_daemon) -> None:
    daemon = await start_daemon(PRICED_CONFIG)
    key_a = await daemon.create_key("a@example.com", name="alpha")
    key_b = await daemon.create_key("b@example.com")
    async with aiohttp.ClientSession() as http:
        for key, model in ((key_a, "sim-gpt"), (key_a, "sim-claude"), (key_b, "sim-gpt"), (key_b, "sim-embed")):
            await chat(http, daemon, key, model=model) if model != "sim-embed" else await embed(http, daemon, key)
        for range_name, points, source in (
            ("hour", 60, "memory"), ("day", 24, "usage_hourly"), ("7d", 56, "usage_hourly"), ("30d", 30, "usage_daily"),
            ("90d", 90, "usage_daily"),
        ):
            doc = await admin_get(http, daemon, "/usage/series", range=range_name, group="model")
            assert (len(doc["buckets"]), doc["source"]) == (points, source), range_name
            assert doc["totals"]["requests"] == 4, range_name
            assert sum(sum(s["requests"]) for s in doc["series"]) == 4
        by_model = await admin_get(http, daemon, "/usage/series", range="day", group="model")
        by_key = await admin_get(http, daemon, "/usage/series", range="hour", group="key")
        by_account = await admin_get(http, daemon, "/usage/series", range="day", group="account")
        only_a = await admin_get(http, daemon, "/usage/series", range="day", group="model", account="a@example.com")
        top1 = await admin_get(http, daemon, "/usage/series", range="day", group="model", limit=1)
    models = {s["key"]: s for s in by_model["series"]}
    gpt = models["sim-gpt"]["totals"]
    assert gpt["cost"] == pytest.approx((gpt["prompt_tokens"] * 2 + gpt["completion_tokens"] * 8) / 1e6)
    claude = models["sim-claude"]["totals"]
    assert claude["cost"] == pytest.approx((claude["prompt_tokens"] + claude["completion_tokens"]) / 1e6)
    assert models["sim-embed"]["totals"]["cost"] == 0  # the simulator runs here: a model [prices] leaves out costs nothing
    assert by_model["totals"]["unpriced_models"] == []
    assert by_model["totals"]["cost"] == pytest.approx(gpt["cost"] + claude["cost"])
    labels = [s["label"] for s in by_key["series"]]
    assert any(label.endswith(" alpha") and key_a.startswith(label.split(" ")[0]) for label in labels)
    assert any(key_b.startswith(label) for label in labels)
    assert {s["label"] for s in by_account["series"]} == {"a@example.com", "b@example.com"}
    assert only_a["totals"]["requests"] == 2
    assert [s["key"] for s in top1["series"]][-1] == "(other)" and len(top1["series"]) == 2


async def embed(http: aiohttp.ClientSession, daemon, key: str) -> int:
    body = {"model": "sim-embed", "input": "a sentence"}
    async with http.post(f"{daemon.base_url}/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status


async def test_usage_series_rejects_unknown_range_and_group(daemon) -> None:
    async with aiohttp.ClientSession() as http:
        for query in ("range=year", "group=email", "limit=0"):
            async with http.get(f"{daemon.url}/admin/v1/usage/series?{query}", headers=daemon.admin_headers) as r:
                assert r.status == 400, query


async def test_the_last_hour_survives_a_restart(start_daemon, tmp_path) -> None:
    data_dir = tmp_path / "restart"
    first = await start_daemon(data_dir=data_dir)
    key = await first.create_key()
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            await chat(http, first, key)
    await first.runner.cleanup()
    second = await start_daemon(data_dir=data_dir)
    await asyncio.wait_for(second.app[LIVE].seeded.wait(), 5)
    async with aiohttp.ClientSession() as http:
        overview = await admin_get(http, second, "/overview")
        series = await admin_get(http, second, "/usage/series", range="hour")
        async with http.get(f"{second.url}/admin/v1/events", headers=second.admin_headers) as stream:
            backlog = await read_sse(stream, 3)
    assert overview["window"]["requests"] == 3
    assert series["totals"]["requests"] == 3
    assert [e["seq"] for _, e in backlog] == [1, 2, 3] and all(e["key_prefix"] for _, e in backlog)


async def test_me_usage_is_limited_to_the_callers_account(daemon) -> None:
    mine = await daemon.create_key("me@example.com")
    other = await daemon.create_key("other@example.com")
    async with aiohttp.ClientSession() as http:
        await chat(http, daemon, mine)
        await chat(http, daemon, other)
        await chat(http, daemon, other)
        async with http.get(f"{daemon.base_url}/me/usage?range=hour&group=key", headers={"Authorization": f"Bearer {mine}"}) as r:
            doc = await r.json()
        async with http.get(f"{daemon.base_url}/me/usage?group=account", headers={"Authorization": f"Bearer {mine}"}) as r:
            assert r.status == 400
    assert doc["totals"]["requests"] == 1
    assert len(doc["series"]) == 1 and mine.startswith(doc["series"][0]["label"])
    assert "other@example.com" not in json.dumps(doc)


async def test_deleting_an_account_forgets_it_in_memory(daemon) -> None:
    key = await daemon.create_key("gone@example.com")
    async with aiohttp.ClientSession() as http:
        await chat(http, daemon, key)
        async with http.delete(f"{daemon.url}/admin/v1/accounts/gone@example.com", headers=daemon.admin_headers) as r:
            assert r.status == 200
        series = await admin_get(http, daemon, "/usage/series", range="hour", group="account")
    assert series["totals"]["requests"] == 0
    assert not [item for item in daemon.app[LIVE].feed._backlog if item[1].account_id]


async def test_openapi_documents_the_dashboard_endpoints(daemon) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/openapi.json") as r:
            paths = (await r.json())["paths"]
    for path in ("/events", "/overview", "/upstreams", "/catalog", "/usage/series"):
        assert path in paths, path


@pytest.mark.parametrize("hour", range(24))
async def test_long_ranges_from_the_day_cache_match_the_ledger(start_daemon, hour) -> None:
    """30 and 90 days read whole past days from memory; the answer is the ledger's, before and after a deletion,
    at every hour of the day (midnight included: the day cache and the windows agree on which days count)."""
    import time

    from noor_daemon.clock import ManualClock
    from noor_daemon.state import ACCOUNTS, KEYRING, LEDGER, SETTINGS
    from noor_daemon.views.series import usage_series

    manual_clock = ManualClock(start=time.time() - time.time() % 86_400 + hour * 3600 + 754.25)
    daemon = await start_daemon(PRICED_CONFIG, clock=manual_clock)
    await daemon.create_key("keeps@example.com")
    await daemon.create_key("leaves@example.com")
    store, ledger = daemon.app[ACCOUNTS], daemon.app[LEDGER]
    keys = [k for k in await store.list_keys()]
    now_ms = int(manual_clock.now() * 1000)
    for day in range(0, 95, 3):
        for i, key in enumerate(keys):
            await ledger.record(
                UsageEvent(ts=now_ms - day * 86_400_000 - i * 3_600_000, model="sim-gpt" if day % 2 else "sim-claude",
                           endpoint="chat/completions", status=200 if day % 5 else 500, latency_ms=10.0,
                           account_id=key.account_id, key_id=key.id, provider="simulator",
                           prompt_tokens=10 + day, completion_tokens=day)
            )
    live = daemon.app[LIVE]
    config = daemon.app[SETTINGS].config.config

    async def both(range_name: str, group: str) -> tuple[dict, dict]:
        common = dict(ledger=ledger, keyring=daemon.app[KEYRING], minutes=live.minutes, config=config,
                      now_ms=now_ms, range_name=range_name, group=group)
        return await usage_series(**common, days=live.days), await usage_series(**common)

    for _ in range(2):  # the second round is served from the cache
        for range_name in ("30d", "90d"):
            for group in ("model", "key", "account"):
                cached, direct = await both(range_name, group)
                assert cached["series"] == direct["series"] and cached["totals"] == direct["totals"], (range_name, group)
    assert live.days.rows > 0
    await store.delete_account((await store.get_account("leaves@example.com")).id)
    assert live.days.rows == 0 and not live.days.days
    cached, direct = await both("90d", "account")
    assert cached["series"] == direct["series"] and [s["label"] for s in cached["series"]] == ["keeps@example.com"]
