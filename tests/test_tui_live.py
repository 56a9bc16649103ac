"""The overview moves while traffic flows; a daemon that is down or refuses the token gets a banner, then a reconnect."""

from __future__ import annotations

import socket
from datetime import UTC

import pytest
from aiohttp import web
from conftest import ADMIN_TOKEN, SIMULATOR_CONFIG
from textual.widgets import DataTable
from tui_helpers import chat, screen_text, static_text, wait_for_text, wait_until

from noor_daemon import config as config_module
from noor_daemon.app import create_app
from noor_daemon.server import GatewayRunner
from noor_daemon.settings import DaemonSettings
from noor_tui.app import AdminApp
from noor_tui.screens.overview import OverviewScreen
from noor_tui.widgets.charts import Chart
from noor_tui.widgets.feed import LiveFeed

pytestmark = pytest.mark.engine_independent


def stat(screen, name: str) -> str:
    return static_text(screen.query_one(f"#stat-{name} .value"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_charts_and_feed_move_while_traffic_flows(daemon, tmp_path) -> None:
    key = await daemon.create_key("live@example.com")
    app = AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        await wait_until(pilot, lambda: screen.loaded, what="the first poll")
        assert stat(screen, "rpm") == "0"
        chart = screen.query_one("#chart-rpm", Chart)
        before = chart.plt.build()

        await chat(daemon.url, key, count=5)
        await chat(daemon.url, "sk-noor-" + "z" * 40)  # refused: an error in the charts
        feed = screen.query_one(LiveFeed)
        await wait_until(pilot, lambda: feed.table.row_count == 6, what="six calls in the live feed")
        rows = [feed.table.get_row_at(i) for i in range(feed.table.row_count)]
        assert str(rows[0][4]) == "401"  # newest first
        await wait_until(pilot, lambda: "live@example.com" in str(feed.table.get_row_at(1)[1]), what="the account's email")
        assert "hello" not in screen_text(app)  # never content

        screen.poll()
        await wait_until(pilot, lambda: stat(screen, "rpm") not in ("0", "–"), what="the request rate to move")
        assert chart.plt.build() != before
        assert stat(screen, "errors") != "0.0%"
        upstreams = screen.query_one("#upstreams", DataTable)
        await wait_until(pilot, lambda: "simulator" in str(upstreams.get_row_at(0)[0]))

        count = feed.table.row_count
        await pilot.press("p")  # paused: calls keep arriving but the table holds still
        await chat(daemon.url, key, count=2)
        await wait_until(pilot, lambda: app.feed.received >= 8)
        await pilot.pause(0.4)
        assert feed.table.row_count == count
        await pilot.press("p")
        await wait_until(pilot, lambda: feed.table.row_count == count + 2, what="the feed to catch up")

        await pilot.press("z")
        await wait_for_text(pilot, "last 10 min")


async def test_banner_when_the_daemon_is_down_then_reconnects(tmp_path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = AdminApp(url, ADMIN_TOKEN, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.connection.state == "unreachable", what="the daemon to be missed")
        banner = app.screen.query_one("#banner")
        await wait_for_text(pilot, "No NoorAPI daemon answers", "noor daemon")

        loaded = config_module.LoadedConfig(config_module.parse(SIMULATOR_CONFIG, "test.toml"), None)
        runner = GatewayRunner(create_app(DaemonSettings(loaded, tmp_path / "data", ADMIN_TOKEN, "test")), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await wait_until(pilot, lambda: app.connection.ok, timeout=15, what="the reconnect")
            await pilot.pause(0.1)
            assert not banner.has_class("-visible")
            await wait_for_text(pilot, "live")
        finally:
            await runner.cleanup()
        await wait_until(pilot, lambda: app.connection.state == "unreachable", timeout=15, what="the daemon going away again")


async def test_banner_when_the_admin_token_is_wrong(daemon, tmp_path) -> None:
    app = AdminApp(daemon.url, "not-the-token", tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.connection.state == "unauthorized", what="the refusal")
        await wait_for_text(pilot, "refused the admin token", "NOOR_ADMIN_TOKEN")
        for mode in ("keys", "usage", "privacy"):
            await app.switch_mode(mode)
            await pilot.pause(0.2)
            assert app.screen.query_one("#banner").has_class("-visible")


async def test_an_unexpected_failure_is_reported_not_raised(daemon, tmp_path, monkeypatch) -> None:
    """A fetch or a render that fails in a way nobody planned for: a notification, the next poll, no traceback."""
    from noor_tui.screens.usage import UsageScreen

    calls = {"fetch": 0}
    original = UsageScreen.fetch

    async def flaky(self):  # the first fetch made for the screen shown (one built while idle fetched unseen)
        calls["fetch"] += 1
        if self.is_current and not calls.get("failed"):
            calls["failed"] = 1
            raise RuntimeError("boom")
        return await original(self)

    monkeypatch.setattr(UsageScreen, "fetch", flaky)
    monkeypatch.setattr(UsageScreen, "POLL_SECONDS", 0.2)
    app = AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.switch_mode("usage")
        await wait_until(pilot, lambda: any("RuntimeError" in n.message for n in app._notifications), what="the notification")
        await wait_until(pilot, lambda: app.screen.loaded and calls.get("failed"), timeout=10, what="the retry")
        assert app.is_running
