"""`noor demo` with the dashboard: a week of history at once, and traffic that keeps the screens moving."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest
from tui_helpers import wait_until

from noor_daemon.cli.demo_dashboard import DemoBackground
from noor_tui.app import make_app

pytestmark = pytest.mark.engine_independent


async def test_the_demo_dashboard_is_alive_within_seconds(tmp_path) -> None:
    background = DemoBackground(tmp_path / "demo", "demo-token")
    url = await asyncio.to_thread(background.start)
    try:
        app = make_app(url, token="demo-token", tz=UTC, export_dir=tmp_path)
        async with app.run_test(size=(120, 36)) as pilot:
            overview = app.screen
            await wait_until(pilot, lambda: overview.loaded, what="the overview")
            first = app.feed.received
            await wait_until(pilot, lambda: app.feed.received >= first + 5, timeout=15, what="calls flowing")
            assert app.feed.last_seq is not None
            await app.switch_mode("usage")
            usage = app.screen
            await wait_until(pilot, lambda: usage.loaded)
            usage.action_set_range("7d")
            await wait_until(pilot, lambda: usage.series.range == "7d", what="the week's range")
            assert usage.series.totals.requests > 500  # the week of history
            assert usage.series.totals.cost and usage.series.totals.cost > 0  # the demo's prices
            screens = {}
            for mode in ("quotas", "keys", "accounts", "privacy", "billing"):
                await app.switch_mode(mode)
                await wait_until(pilot, lambda: app.screen.loaded, what=mode)
                screens[mode] = app.screen
            budgets = [row for report in screens["quotas"].data.reports.values()
                       for row in [*report.limits, *(r for kq in report.keys for r in kq.limits)] if row.is_budget]
            assert {row.limit for row in budgets} == {"budget_per_day", "budget_per_month"}  # the money views have bars
            assert all(0 < row.used < row.value for row in budgets if row.scope == "account")
            reports = screens["quotas"].data.reports.values()
            full = [(r.account.email, row.limit) for r in reports for row in r.limits if row.used >= row.value]
            assert all(email == "trial@example.com" for email, _ in full), full  # the history fits the free plan
            assert overview.spend is not None and overview.spend.month.total > 0
            assert app.connection.ok
    finally:
        background.stop()


async def test_the_demo_usage_grows_with_the_range_and_matches_billing(tmp_path) -> None:
    """The seeded history is one ledger with the live traffic: 24 h ≤ 7 d ≤ 30 d ≤ 90 d, the week is not a flat
    line then a wall, and each account's month on the Billing screen is its usage over the same window."""
    import time

    import aiohttp

    from noor_daemon.cli.demo import TRIAL_EMAIL
    from noor_daemon.cli.demo_dashboard import ACCOUNTS
    from noor_daemon.domain.windows import HOUR_MS, calendar_period

    background = DemoBackground(tmp_path / "demo", "demo-token")
    url = await asyncio.to_thread(background.start)
    try:
        await asyncio.sleep(2)  # some live traffic on top of the history
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer demo-token"}) as http:

            async def get(path: str, **params) -> dict:
                async with http.get(f"{url}/admin/v1{path}", params=params) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            totals = [(await get("/usage/series", range=r, group="model"))["totals"]["requests"] for r in ("day", "7d", "30d", "90d")]
            assert 0 < totals[0] <= totals[1] <= totals[2] <= totals[3], totals
            week = await get("/usage/series", range="7d", group="model")
            per_bucket = [sum(s["requests"][b] for s in week["series"]) for b in range(56)]
            assert min(per_bucket[:-1]) > 0 and max(per_bucket) < 20 * (sum(per_bucket) / 56), per_bucket  # no wall
            now = int(time.time() * 1000)
            month = calendar_period("month", now)
            hours = (now - now % HOUR_MS - month.start) // HOUR_MS + 1
            for email, *_ in ACCOUNTS:  # traffic goes on meanwhile: the summary is read between two bills
                before = (await get(f"/billing/accounts/{email}"))["usage"]
                summary = (await get("/usage/summary", hours=str(hours), account=email))["totals"]
                after = (await get(f"/billing/accounts/{email}"))["usage"]
                counted = ("requests", "errors", "prompt_tokens", "completion_tokens")
                assert all(before[k] <= summary[k] <= after[k] for k in counted), (email, before, summary, after)
                assert summary["cost"] > 0 or email == TRIAL_EMAIL  # the history is priced as the daemon meters
                assert summary["requests"] > 0 or email == TRIAL_EMAIL
    finally:
        background.stop()
