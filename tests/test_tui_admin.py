"""The admin dashboard driven headless against a real daemon on loopback.

Keys (create with the show-once modal, revoke), accounts (create, export, delete with the
email typed), quotas, usage ranges, privacy requests, palette, help and themes.
"""

from __future__ import annotations

import json
import stat
from datetime import UTC

import pytest
from textual.widgets import Button, DataTable, Input, Select
from tui_helpers import built_modes, chat, screen_text, table_text, wait_for_screen, wait_for_text, wait_until

from noor_daemon.client import AdminClient
from noor_tui.app import AdminApp
from noor_tui.commands import commands_for
from noor_tui.screens.accounts import AccountsScreen
from noor_tui.screens.help import HelpScreen
from noor_tui.screens.keys import KeysScreen
from noor_tui.widgets.modals import (
    ChoiceModal,
    ConfirmModal,
    ExportModal,
    NewAccountModal,
    NewKeyModal,
    PromptModal,
    ShowOnceKeyModal,
    TypedConfirmModal,
)

pytestmark = pytest.mark.engine_independent

SIZE = (120, 36)


def admin_app(daemon, tmp_path, **options) -> AdminApp:
    return AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path, **options)


async def open_screen(pilot, mode: str):
    await pilot.app.switch_mode(mode)
    screen = pilot.app.screen
    await wait_until(pilot, lambda: screen.loaded, what=f"{mode} to load")
    return screen


async def test_create_a_key_shows_it_once_then_revoke_marks_it(daemon, tmp_path) -> None:
    await daemon.create_key("owner@example.com")  # the account, with a first key
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "keys")
        assert isinstance(screen, KeysScreen)
        await pilot.press("n")
        await wait_for_screen(pilot, NewKeyModal)
        modal = app.screen
        account_id = next(iter(app.accounts))
        modal.query_one("#account", Select).value = account_id
        modal.query_one("#name", Input).value = "ci-runner"
        modal.query_one("#confirm", Button).press()
        await wait_for_screen(pilot, ShowOnceKeyModal)

        shown = app.screen
        secret = shown.secret
        assert secret.startswith("sk-noor-")
        await wait_for_text(pilot, secret, "only time the full key is shown")
        await pilot.press("c")
        assert app.clipboard == secret
        assert await chat(daemon.url, secret) == [200]  # the key shown works
        shown.query_one("#done", Button).press()
        await wait_until(pilot, lambda: app.screen is screen, what="the modal to close")

        table = screen.query_one("#keys DataTable", DataTable)
        await wait_until(pilot, lambda: "ci-runner" in table_text(table), what="the new key in the table")
        assert secret not in screen_text(app)  # never shown again
        new_key = next(k for k in screen.data.keys if k.name == "ci-runner")
        table.move_cursor(row=table.get_row_index(new_key.id))
        await pilot.press("x")
        await wait_for_screen(pilot, ConfirmModal)
        await pilot.press("y")
        await wait_until(
            pilot, lambda: "revoked" in table_text(table).split("ci-runner")[1].split("\n")[0], what="the key marked revoked"
        )
        assert await chat(daemon.url, secret) == [401]


async def test_rotate_shows_the_replacement_once(daemon, tmp_path) -> None:
    old = await daemon.create_key("rotate@example.com", name="laptop")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "keys")
        await pilot.press("o")
        await wait_for_screen(pilot, ChoiceModal)
        assert app.screen.value == "0"  # no overlap unless asked for
        app.screen.query_one("#confirm", Button).press()
        await wait_for_screen(pilot, ShowOnceKeyModal)
        replacement = app.screen.secret
        assert replacement != old and await chat(daemon.url, replacement) == [200]
        assert await chat(daemon.url, old) == [401]
        await pilot.press("escape")
        table = screen.query_one("#keys DataTable", DataTable)
        await wait_until(pilot, lambda: table_text(table).count("laptop") == 2, what="old and new key listed")


async def test_create_an_account_then_export_and_delete_it_with_the_email_typed(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "accounts")
        assert isinstance(screen, AccountsScreen)
        await pilot.press("n")
        await wait_for_screen(pilot, NewAccountModal)
        app.screen.query_one("#email", Input).value = "leaving@example.com"
        app.screen.query_one("#confirm", Button).press()
        table = screen.query_one("#accounts DataTable", DataTable)
        await wait_until(pilot, lambda: "leaving@example.com" in table_text(table), what="the new account")
        key = await daemon.create_key("leaving@example.com")
        assert await chat(daemon.url, key, count=3) == [200, 200, 200]

        await pilot.press("x")
        await wait_for_screen(pilot, ExportModal)
        export = app.screen
        target = tmp_path / "leaving.json"
        export.query_one("#path", Input).value = str(target)
        export.query_one("#confirm", Button).press()
        await wait_until(pilot, lambda: export.result is not None, what="the export to finish")
        await wait_for_text(pilot, "Done", "readable by you only")
        assert export.result.path == str(target) and export.result.events == 3
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        exported = json.loads(target.read_text())
        assert "leaving@example.com" in json.dumps(exported)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)

        await pilot.press("d")
        await wait_for_screen(pilot, TypedConfirmModal)
        confirm = app.screen
        button = confirm.query_one("#confirm", Button)
        await pilot.press(*"leaving@example.org")
        assert button.disabled  # a near miss does not unlock it
        confirm.query_one("#typed", Input).value = ""
        await pilot.press(*"leaving@example.com")
        await wait_until(pilot, lambda: not button.disabled)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "leaving@example.com" not in table_text(table), what="the account to go")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        assert [a.email for a in await admin.list_accounts()] == []
    assert await chat(daemon.url, key) == [401]


async def test_quotas_show_limits_and_suspension(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(QUOTA_CONFIG)
    key = await daemon.create_key("quota@example.com", plan="small")
    await chat(daemon.url, key, count=3)
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "quotas")
        detail = screen.query_one("#quota-detail", DataTable)
        await wait_until(pilot, lambda: "requests/day" in table_text(detail))
        text = table_text(detail)
        assert "3 / 10" in text and "30%" in text
        await pilot.press("s")
        await wait_for_screen(pilot, ConfirmModal)
        await pilot.press("y")
        await wait_until(pilot, lambda: "suspended" in table_text(detail), what="the suspension shown")
        assert "‖" in table_text(screen.query_one("#quota-accounts DataTable", DataTable))
    assert await chat(daemon.url, key) == [403]


QUOTA_CONFIG = """
default_plan = "small"

[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator", model = "sim-gpt" }]

[plans.small]
requests_per_day = 10
tokens_per_month = 100000
"""


async def test_usage_ranges_and_groups(daemon, tmp_path) -> None:
    key = await daemon.create_key("usage@example.com", name="batch")
    await chat(daemon.url, key, count=4)
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "usage")
        assert screen.series.range == "day" and screen.series.totals.requests == 4
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: screen.series.range == "hour", what="the hour range")
        assert len(screen.series.buckets) == 60 and screen.series.totals.requests == 4
        await pilot.press("g")
        await wait_until(pilot, lambda: screen.series.group == "key", what="grouping by key")
        assert "batch" in table_text(screen.query_one("#usage-table DataTable", DataTable))
        await pilot.press("g")
        await wait_until(pilot, lambda: screen.series.group == "account")
        table = screen.query_one("#usage-table DataTable", DataTable)
        assert "usage@example.com" in table_text(table)
        await pilot.press("g")
        await wait_until(pilot, lambda: screen.series.group == "model" and table.row_count == 1)
        await chat(daemon.url, key, model="sim-claude")
        screen.poll()
        await wait_until(pilot, lambda: table.row_count == 2, what="a second model")
        table.move_cursor(row=1)
        polls = screen.polls
        screen.poll()
        await wait_until(pilot, lambda: screen.polls > polls)
        assert table.cursor_row == 1  # a poll updates rows in place: the cursor stays
        for _ in range(4):
            await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: screen.series.range == "90d", what="the 90-day range")


async def test_privacy_requests_show_due_dates_and_overdue(start_daemon, tmp_path, manual_clock) -> None:
    daemon = await start_daemon(clock=manual_clock)
    await daemon.create_key("asks@example.com")
    await daemon.create_key("late@example.com")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        await admin.record_privacy_request("access", "late@example.com", note="by post")
        manual_clock.advance(31 * 86400)
        await admin.record_privacy_request("correction", "asks@example.com")
    from datetime import datetime

    app = admin_app(daemon, tmp_path, clock=lambda: datetime.fromtimestamp(manual_clock.now(), UTC))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, "privacy")
        table = screen.query_one("#privacy-requests DataTable", DataTable)
        text = table_text(table)
        late = next(line for line in text.split("\n") if "late@example.com" in line)
        asks = next(line for line in text.split("\n") if "asks@example.com" in line)
        assert "overdue" in late and "overdue" not in asks and "(30d)" in asks
        await wait_for_text(pilot, "1 overdue")
        table.move_cursor(row=0)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptModal) and app.screen.query("#value"), what="the note dialog")
        app.screen.query_one("#value", Input).value = "sent the export by mail"
        app.screen.query_one("#confirm", Button).press()
        await wait_until(pilot, lambda: "completed" in table_text(table), what="the request completed")
        await pilot.press("t")
        audit = screen.query_one("#audit-log DataTable", DataTable)
        await wait_until(pilot, lambda: "privacy.request" in table_text(audit))
        assert "@" not in table_text(audit).replace("late@example.com", "").replace("asks@example.com", "")


async def test_billing_says_it_is_not_configured(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_screen(pilot, "billing")
        await wait_for_text(pilot, "Billing is not configured")


async def test_every_action_is_in_the_palette(daemon, tmp_path) -> None:
    await daemon.create_key("palette@example.com")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        titles = [title for title, _, _ in commands_for(app)]
        for _, label in app.NAV:
            assert f"Go to {label}" in titles
        for mode, label in app.NAV:
            built = app.get_screen_stack(mode)[0] if mode in built_modes(app) else None
            for binding in app.MODES[mode].BINDINGS:
                if binding.show and binding.description:
                    # a screen built (while idle) says which of its actions cannot work (Stripe links without billing)
                    offered = built is None or built.check_action(binding.action, ()) is not False
                    assert (f"{label}: {binding.description}" in titles) == offered
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Keys: New")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for_screen(pilot, NewKeyModal)
        assert app.current_mode == "keys"


async def test_help_and_theme(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await wait_for_screen(pilot, HelpScreen)
        for _, label in app.NAV:
            assert label in app.screen.text()
        await pilot.press("escape")
        assert app.theme == "noor-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "noor-light"
        await pilot.press("ctrl+t")
        assert app.theme == "noor-dark"


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_every_screen_renders_at_small_and_large_sizes(daemon, tmp_path, size) -> None:
    key = await daemon.create_key("sizes@example.com")
    await chat(daemon.url, key, count=2)
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=size) as pilot:
        for mode, _ in app.NAV:
            await open_screen(pilot, mode)
        assert app.connection.ok
