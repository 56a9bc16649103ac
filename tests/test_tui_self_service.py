"""The self-service view (`noor tui --key`): a key holder sees their own account only, exports it, deletes it."""

from __future__ import annotations

import json
import stat
from datetime import UTC

import pytest
from textual.widgets import Button, DataTable, Input
from tui_helpers import chat, screen_text, table_text, wait_for_screen, wait_for_text, wait_until

from noor_tui.app import MeApp, make_app
from noor_tui.screens.deleted import AccountDeletedScreen
from noor_tui.screens.me import MeAccountScreen
from noor_tui.widgets.modals import ExportModal, TypedConfirmModal

pytestmark = pytest.mark.engine_independent

SIZE = (120, 36)


async def test_the_self_service_view_sees_its_own_account_only(daemon, tmp_path) -> None:
    mine = await daemon.create_key("me@example.com", name="laptop")
    other = await daemon.create_key("someone.else@example.com", name="theirs")
    await chat(daemon.url, mine, count=2)
    await chat(daemon.url, other, count=5)
    app = make_app(daemon.url, api_key=mine, tz=UTC, export_dir=tmp_path)
    assert isinstance(app, MeApp) and not hasattr(app, "admin")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, MeAccountScreen)
        await wait_until(pilot, lambda: screen.loaded, what="the account screen")
        await wait_for_text(pilot, "me@example.com", "laptop")
        assert list(app.MODES) == ["account", "usage", "data"]
        seen = screen_text(app)
        await pilot.press("5")  # the admin screens' keys do nothing here
        assert app.current_mode == "account"

        await app.switch_mode("usage")
        usage = app.screen
        await wait_until(pilot, lambda: usage.loaded, what="own usage")
        assert usage.series.totals.requests == 2  # not the other account's five
        await pilot.press("g")
        await wait_until(pilot, lambda: usage.series.group == "key")
        assert "laptop" in table_text(usage.query_one("#usage-table DataTable", DataTable))
        await pilot.press("g")
        await wait_until(pilot, lambda: usage.series.group == "model", what="only model and key to group by")
        seen += screen_text(app)

        await app.switch_mode("data")
        await wait_until(pilot, lambda: app.screen.loaded)
        seen += screen_text(app)
    assert "someone.else@example.com" not in seen and "theirs" not in seen


async def test_export_my_data_and_delete_my_account(daemon, tmp_path) -> None:
    mine = await daemon.create_key("leaver@example.com")
    await daemon.create_key("stayer@example.com")
    await chat(daemon.url, mine, count=3)
    app = MeApp(daemon.url, mine, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("data")
        screen = app.screen
        await wait_until(pilot, lambda: screen.loaded)

        await pilot.press("x")
        await wait_for_screen(pilot, ExportModal)
        export = app.screen
        target = tmp_path / "mine.json"
        export.query_one("#path", Input).value = str(target)
        export.query_one("#confirm", Button).press()
        await wait_until(pilot, lambda: export.result is not None, what="the export")
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        text = target.read_text()
        assert "leaver@example.com" in text and "stayer@example.com" not in text
        assert len(json.loads(text)["usage_events"]) == 3
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)

        await pilot.press("d")
        await wait_for_screen(pilot, TypedConfirmModal)
        await pilot.press(*"leaver@example.com", "enter")
        await wait_for_screen(pilot, AccountDeletedScreen)
        await wait_for_text(pilot, "Account deleted", "leaver@example.com")
        await pilot.pause(2.5)  # a refused key is never asked about again: no "Retrying" banner, no loop
        assert isinstance(app.screen, AccountDeletedScreen) and app.connection.state != "unauthorized"
        assert "Retrying" not in screen_text(app) and "refused this API key" not in screen_text(app)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, what="the app to quit")
    assert await chat(daemon.url, mine) == [401]
