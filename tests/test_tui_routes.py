"""The Routes screen against a real daemon and a stand-in provider: a breaker opens when the provider fails and
closes when it answers again; a bad config file is refused with its errors while the old one keeps serving; the
Doctor panel shows what `noor doctor` prints. And the fixes of issue #21 that are about what a person sees."""

from __future__ import annotations

import json
from datetime import UTC

import aiohttp
import pytest
from standin_upstream import standin_config
from textual.widgets import Button, Input
from tui_helpers import chat, screen_text, wait_for_screen, wait_for_text, wait_until

from noor_daemon.client import AdminClient
from noor_tui.app import AdminApp
from noor_tui.commands import commands_for
from noor_tui.screens.routes import RoutesScreen
from noor_tui.widgets.detail import DetailScreen
from noor_tui.widgets.modals import ChoiceModal, ExportModal
from noor_tui.widgets.records import RecordTable

pytestmark = pytest.mark.engine_independent

SIZE = (160, 48)
BREAKER = "[routing]\nbreaker_failures = 2\nbreaker_cooldown = 2.0\n"


def admin_app(daemon, tmp_path) -> AdminApp:
    return AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path)


def breaker_of(table: RecordTable, model: str) -> str:
    record = next(r for r in table.records if r.item.model == model)
    return record.cells["breaker"].plain


async def test_a_breaker_opens_when_the_provider_fails_and_closes_when_it_answers(start_daemon, standin, tmp_path) -> None:
    daemon = await start_daemon(standin_config(standin, extra=BREAKER))
    key = await daemon.create_key("routes@example.com")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        screen = await wait_for_screen(pilot, RoutesScreen)
        table = screen.query_one("#routes", RecordTable)
        await wait_until(pilot, lambda: screen.loaded and table.records, what="the routes")
        assert {r.item.model for r in table.records} == {"gpt-test", "gpt-test-mini", "embed-test", "claude-test"}
        assert await chat(daemon.url, key, model="gpt-test") == [200]
        await wait_until(pilot, lambda: breaker_of(table, "gpt-test") == "● closed", what="a closed breaker")

        standin.fail(500, "down for maintenance")
        assert await chat(daemon.url, key, model="gpt-test", count=2) == [500, 500]
        screen.poll()
        await wait_until(pilot, lambda: breaker_of(table, "gpt-test") == "✗ open", what="the breaker open")
        await wait_for_text(pilot, "1 breaker open")
        assert await chat(daemon.url, key, model="gpt-test") == [503]  # refused fast while open

        standin.reset()
        await pilot.pause(2.1)  # the cool-down: the next call is the probe
        assert await chat(daemon.url, key, model="gpt-test") == [200]
        await wait_until(pilot, lambda: breaker_of(table, "gpt-test") == "● closed", what="the breaker closed again")
        assert "breaker open" not in screen_text(app)

        assert table.select("standin-openai:gpt-test")
        await pilot.press("enter")
        detail = await wait_for_screen(pilot, DetailScreen)
        assert "standin-gpt" in detail.text() and "Failed attempts: 2" in detail.text()


async def test_reload_shows_the_errors_of_a_bad_file_and_keeps_the_old_config(start_daemon, tmp_path, monkeypatch) -> None:
    good = """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator", model = "sim-gpt" }]
"""
    path = tmp_path / "noor.toml"
    path.write_text(good)
    monkeypatch.setenv("NOOR_CONFIG", str(path))  # what the daemon re-reads
    daemon = await start_daemon(good)
    key = await daemon.create_key("reload@example.com")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("routes")
        screen = app.screen
        await wait_until(pilot, lambda: screen.loaded)
        path.write_text(good + '\n[[models]]\nname = "broken"\nroutes = [{ provider = "nowhere", model = "x" }]\n')
        await pilot.press("R")
        detail = await wait_for_screen(pilot, DetailScreen)
        assert detail.detail_title == "Config not reloaded"
        assert "nowhere" in detail.text() and "previous one keeps serving" in detail.text()
        assert await chat(daemon.url, key) == [200]  # the old config serves on
        await pilot.press("escape")

        path.write_text(good.replace('name = "sim-gpt"', 'name = "sim-gpt"\naliases = ["gpt-4o"]'))
        await pilot.press("R")
        await wait_until(pilot, lambda: any("Reloaded from" in n.message for n in app._notifications), what="the reload")
        assert await chat(daemon.url, key, model="gpt-4o") == [200]


async def test_the_doctor_panel_and_endpoint(daemon, tmp_path) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/doctor", headers=daemon.admin_headers) as response:
            report = await response.json()
    assert report["ledger"]["where"].startswith(str(daemon.data_dir)) or report["ledger"]["engine"] == "postgresql"
    assert report["admin_token"] == {"source": "test"} and daemon.admin_token not in json.dumps(report)
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("routes")
        await wait_until(pilot, lambda: app.screen.loaded)
        await pilot.press("d")
        detail = await wait_for_screen(pilot, DetailScreen)
        text = detail.text()
        for label in ("version", "config file", "data dir", "ledger", "keyring", "secrets", "admin token", "daemon", "limits"):
            assert f"{label}:" in text
        assert str(daemon.data_dir) in text and "built-in simulator" in text


async def test_the_palette_finds_routes_settings_and_reload(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        titles = [title.lower() for title, _, _ in commands_for(app)]
        for word in ("route", "setting", "reload"):
            assert any(word in title for title in titles), word
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"reload")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.current_mode == "routes", what="the routes screen")


async def test_a_toast_with_brackets_shows_them(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.switch_mode("keys")  # a screen that shows no "[billing]" of its own
        await wait_until(pilot, lambda: app.screen.loaded)
        assert "[billing" not in screen_text(app)
        app.screen.notify("Billing is not configured on this daemon: add a [billing] section to its config.")
        await wait_for_text(pilot, "[billing]")


async def test_stripe_actions_are_not_offered_without_billing(daemon, tmp_path) -> None:
    await daemon.create_key("nobill@example.com")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("billing")
        screen = app.screen
        await wait_until(pilot, lambda: screen.loaded and screen.data is not None)
        await pilot.pause(0.2)
        footer = screen_text(app).splitlines()[-1] if "\n" in screen_text(app) else screen_text(app)
        assert "Checkout" not in footer and "Portal" not in footer and "Stripe link" not in footer
        assert not [t for t, _, _ in commands_for(app) if "Stripe" in t or "Checkout" in t]
        await pilot.press("c")  # the key does nothing: no dialog opens
        await pilot.pause(0.2)
        assert app.screen is screen


async def test_export_starts_on_its_primary_button_and_presets_the_requests_account(daemon, tmp_path) -> None:
    await daemon.create_key("first@example.com")
    await daemon.create_key("second@example.com")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        await admin.record_privacy_request("access", "second@example.com")
        second = (await admin.get_account("second@example.com")).id
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("privacy")
        screen = app.screen
        requests = screen.query_one("#privacy-requests", RecordTable)
        await wait_until(pilot, lambda: screen.loaded and requests.records)
        await pilot.press("x")
        choice = await wait_for_screen(pilot, ChoiceModal)
        assert choice.value == second  # the selected request's account
        choice.query_one("#confirm", Button).press()
        export = await wait_for_screen(pilot, ExportModal)
        assert export.focused is export.query_one("#confirm", Button)
        export.query_one("#path", Input).value = str(tmp_path / "second.json")
        await pilot.press("tab", "tab", "enter")  # Tab Tab Enter exports (the path box submits), never closes empty-handed
        await wait_until(pilot, lambda: export.result is not None, what="the export")
        assert "second@example.com" in (tmp_path / "second.json").read_text()
