"""`noor demo` with the dashboard: a week of history at once, and traffic that keeps the screens moving."""

from __future__ import annotations

import asyncio
from datetime import UTC

from noor_daemon.cli.demo_dashboard import DemoBackground
from noor_tui.app import make_app
from tui_helpers import wait_until


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
            for mode in ("quotas", "keys", "accounts", "privacy", "billing"):
                await app.switch_mode(mode)
                await wait_until(pilot, lambda: app.screen.loaded, what=mode)
            assert app.connection.ok
    finally:
        background.stop()
