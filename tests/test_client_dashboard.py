"""The client methods the dashboard uses: live feed, overview, upstreams, usage series, quotas; MeClient."""

from __future__ import annotations

import asyncio
import stat

import aiohttp
import pytest

from noor_daemon.client import (
    AdminApiError,
    AdminClient,
    CallEvent,
    DaemonUnreachable,
    MeClient,
    Overview,
    QuotaReport,
    UsageSeries,
)

pytestmark = pytest.mark.engine_independent


async def _chat(daemon, key: str) -> None:
    body = {"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{daemon.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
            await r.read()


async def test_live_feed_overview_upstreams_and_series(daemon) -> None:
    key = await daemon.create_key("client@example.com")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        received: list[CallEvent] = []

        async def listen() -> None:
            async for item in admin.events(backlog=0):
                if isinstance(item, CallEvent):
                    received.append(item)
                    if len(received) == 2:
                        return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.1)
        await _chat(daemon, key)
        await _chat(daemon, key)
        await asyncio.wait_for(listener, 5)
        assert [e.seq for e in received] == [1, 2] and received[0].total_tokens > 0

        overview = await admin.overview(window=600, step=10)
        assert isinstance(overview, Overview) and overview.window.requests == 2
        assert len(overview.series["rpm"]) == 60

        health = await admin.upstreams()
        assert health.providers[0].name == "simulator" and health.providers[0].requests == 2

        series = await admin.usage_series("hour", "account")
        assert isinstance(series, UsageSeries) and series.series[0].label == "client@example.com"
        assert sum(series.series[0].tokens) == series.totals.prompt_tokens + series.totals.completion_tokens


async def test_quota_and_suspensions(daemon) -> None:
    await daemon.create_key("quota@example.com")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        report = await admin.account_quota("quota@example.com")
        assert isinstance(report, QuotaReport) and len(report.keys) == 1
        key_id = report.keys[0].key.id
        assert (await admin.suspend_account("quota@example.com")).status == "suspended"
        assert (await admin.unsuspend_account("quota@example.com")).status == "active"
        assert (await admin.suspend_key(key_id, reason="test")).state == "suspended"
        assert (await admin.unsuspend_key(key_id)).state == "active"
        limited = await admin.set_key_limits(key_id, {"requests_per_minute": 5})
        assert limited.limits == {"requests_per_minute": 5}
        report = await admin.account_quota("quota@example.com")
        assert [row.limit for row in report.keys[0].limits] == ["requests_per_minute"]


async def test_events_raise_the_clients_errors(daemon, unused_tcp_port: int) -> None:
    async with AdminClient(daemon.url, "wrong-token") as admin:
        with pytest.raises(AdminApiError) as error:
            async for _ in admin.events():
                pass
        assert error.value.status == 401
    async with AdminClient(f"http://127.0.0.1:{unused_tcp_port}", "t") as admin:
        with pytest.raises(DaemonUnreachable):
            async for _ in admin.events():
                pass


async def test_me_client_sees_its_own_account_only(daemon, tmp_path) -> None:
    mine = await daemon.create_key("self@example.com", name="laptop")
    other = await daemon.create_key("someone@example.com")
    await _chat(daemon, mine)
    await _chat(daemon, other)
    async with MeClient(daemon.url, mine) as me:
        info = await me.me()
        assert info.account.email == "self@example.com" and [k.name for k in info.api_keys] == ["laptop"]
        assert (await me.quota()).account.email == "self@example.com"
        usage = await me.usage_series("hour", "key")
        assert usage.totals.requests == 1
        with pytest.raises(AdminApiError) as error:
            await me.usage_series("day", "account")
        assert error.value.status == 400

        done = await me.export(tmp_path / "mine.json")
        assert stat.S_IMODE((tmp_path / "mine.json").stat().st_mode) == 0o600
        exported = (tmp_path / "mine.json").read_text()
        assert "self@example.com" in exported and "someone@example.com" not in exported
        assert done.bytes > 0

        issued = await me.request_deletion()
        assert issued["token"]
        with pytest.raises(AdminApiError):
            await me.confirm_deletion("not-the-token")
        await me.confirm_deletion(issued["token"])
    async with MeClient(daemon.url, mine) as me:
        with pytest.raises(AdminApiError) as error:
            await me.me()
        assert error.value.status == 401
    async with MeClient(daemon.url, other) as me:
        assert (await me.me()).account.email == "someone@example.com"


async def test_catalog_lists_plans_models_and_prices(start_daemon) -> None:
    from test_admin_dashboard import PRICED_CONFIG

    daemon = await start_daemon(PRICED_CONFIG)
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        catalog = await admin.catalog()
    assert catalog.models == ["sim-gpt", "sim-claude", "sim-embed"]
    assert catalog.plans == {"free": {}} and catalog.default_plan == "free"
    assert catalog.prices["sim-gpt"] == {
        "input_per_million": 2.0, "output_per_million": 8.0, "cached_input_per_million": None, "cache_write_per_million": None,
        "max_output": None,
    }
    assert catalog.billing_configured is False and catalog.retention_days == 90
