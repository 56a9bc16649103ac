"""Every table of the dashboard, driven as a person would against a real daemon on loopback: `/` filters it
live, a header click or `<` `>` sorts it and `r` reverses, Enter opens the record's detail panel, `y` copies
its id. And the cursor follows the record acted on: suspend a key, then revoke, and it is that key."""

from __future__ import annotations

from datetime import UTC

import pytest
from textual.widgets import Button, Input
from tui_helpers import chat, wait_for_screen, wait_until

from noor_daemon.client import AdminClient
from noor_tui.app import AdminApp, MeApp
from noor_tui.widgets.detail import DetailScreen
from noor_tui.widgets.modals import ConfirmModal, PromptModal
from noor_tui.widgets.records import RecordTable

pytestmark = pytest.mark.engine_independent

SIZE = (160, 48)

PLANS_CONFIG = """
default_plan = "free"

[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator", model = "sim-gpt" }]

[[models]]
name = "sim-claude"
routes = [{ provider = "simulator", model = "sim-claude" }]

[plans.free]
requests_per_day = 1000

[plans.pro]
requests_per_minute = 600

[plans.tiny]
requests_per_day = 2
"""


def admin_app(daemon, tmp_path) -> AdminApp:
    return AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path)


async def open_table(pilot, mode: str, table_id: str, *, rows: int = 1) -> RecordTable:
    app = pilot.app
    await app.switch_mode(mode)
    screen = app.screen
    await wait_until(pilot, lambda: screen.loaded, what=f"{mode} to load")
    table = screen.query_one(f"#{table_id}", RecordTable)
    await wait_until(pilot, lambda: len(table.records) >= rows, what=f"{rows} rows in #{table_id}")
    table.table.focus()
    await pilot.pause()
    return table


def shown(table: RecordTable) -> list[str]:
    """Row keys in the order the table shows them."""
    return [str(row.key.value) for row in table.table.ordered_rows]


async def filter_table(pilot, table: RecordTable, text: str, expected: set[str]) -> None:
    """`/`, type, and only `expected` remain; Enter keeps the filter; Esc clears it."""
    everything = len(table.records)
    await pilot.press("slash")
    assert table.filter_input.has_focus
    await pilot.press(*text)
    await wait_until(pilot, lambda: set(shown(table)) == expected, what=f"the filter {text!r} to leave {expected}")
    await pilot.press("enter")
    assert table.table.has_focus and set(shown(table)) == expected  # the filter stays while the user works
    await pilot.press("escape")
    await wait_until(pilot, lambda: len(shown(table)) == everything, what="the filter cleared")


async def sort_table(pilot, table: RecordTable, column: str, expected: list[str], *, click: bool = False) -> None:
    """Sort by `column` (a header click, or `>` until it is the sort column): rows in `expected` order; `r` reverses."""
    if click:
        x = 1
        for key, _, width in table._laid_out:
            if key == column:
                break
            x += width + 2
        await pilot.click(table.table, offset=(x, 0))
    else:
        for _ in range(len(table.columns) + 1):
            if table.sort_key == column:
                break
            await pilot.press("greater_than_sign")
    assert table.sort_key == column and not table.sort_reverse
    await wait_until(pilot, lambda: [k for k in shown(table) if k in expected] == expected, what=f"sorted by {column}")
    await pilot.press("r")
    await wait_until(pilot, lambda: [k for k in shown(table) if k in expected] == expected[::-1], what="reversed")
    await pilot.press("r")


async def open_detail(pilot, table: RecordTable, key: str, *needles: str) -> DetailScreen:
    assert table.select(key)
    await pilot.press("enter")
    detail = await wait_for_screen(pilot, DetailScreen)
    await wait_until(pilot, lambda: detail.loaded, timeout=10, what="the detail's sections")
    text = detail.text()
    for needle in needles:
        assert needle in text, f"{needle!r} not in the detail panel:\n{text}"
    return detail


async def copy_from(pilot, table: RecordTable, key: str, expected: str) -> None:
    assert table.select(key)
    await pilot.press("y")
    assert pilot.app.clipboard == expected


async def close_detail(pilot, detail: DetailScreen) -> None:
    await pilot.press("y")  # the panel copies its record's id too
    assert pilot.app.clipboard == detail.copy_value
    await pilot.press("escape")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, DetailScreen), what="the panel to close")


async def test_keys_filter_sort_detail_copy(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    alpha = await daemon.create_key("ada@example.com", name="alpha")
    await daemon.create_key("grace@example.com", name="charlie", limits={"requests_per_day": 50})
    await daemon.create_key("linus@example.com", name="bravo")
    await chat(daemon.url, alpha, count=2)
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        keys = {k.name: k for k in await admin.list_keys()}
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_table(pilot, "keys", "keys", rows=3)
        await filter_table(pilot, table, "grace", {keys["charlie"].id})
        await filter_table(pilot, table, "name:br", {keys["bravo"].id})
        await sort_table(pilot, table, "name", [keys[n].id for n in ("alpha", "bravo", "charlie")], click=True)
        detail = await open_detail(pilot, table, keys["charlie"].id, "charlie", "grace@example.com", "requests/day",
                                   "History", "key.created", "Usage · last 30 days")
        await close_detail(pilot, detail)
        await open_detail(pilot, table, keys["alpha"].id, "Requests: 2")
        await pilot.press("escape")
        await copy_from(pilot, table, keys["bravo"].id, keys["bravo"].id)


async def test_suspend_then_revoke_hits_the_key_the_user_chose(start_daemon, tmp_path) -> None:
    """Suspending re-sorts the table (suspended keys go below the active ones); the cursor goes with the key,
    so the revoke that follows is of that key, not of whichever key moved under the cursor."""
    daemon = await start_daemon(PLANS_CONFIG)
    for email, name in (("a@example.com", "first"), ("b@example.com", "second"), ("c@example.com", "third")):
        await daemon.create_key(email, name=name)
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_table(pilot, "keys", "keys", rows=3)
        order = shown(table)
        chosen = order[0]  # the newest key, on top while it is active
        assert table.select(chosen)
        await pilot.press("s")
        prompt = await wait_for_screen(pilot, PromptModal)
        await pilot.press(*"leaked in a gist")
        prompt.query_one("#confirm", Button).press()
        await wait_until(pilot, lambda: table.selected is not None and table.selected.item.state == "suspended"
                         and shown(table)[-1] == chosen, what="the key suspended and moved below the active ones")
        assert table.selected.key == chosen  # the cursor went with it
        await pilot.press("x")
        await wait_for_screen(pilot, ConfirmModal)
        await pilot.press("y")
        await wait_until(pilot, lambda: table.selected.item.state == "revoked", what="the revocation shown")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        states = {k.id: k.state for k in await admin.list_keys()}
        suspended = [e for e in (await admin.audit(action="key.suspended")).data]
    assert states[chosen] == "revoked"
    assert sorted(state for key, state in states.items() if key != chosen) == ["active", "active"]
    assert suspended[0].target_id == chosen and suspended[0].details["reason"] == "leaked in a gist"


async def test_accounts_and_quotas_filter_sort_detail_copy(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    await daemon.create_key("zed@example.com", plan="pro")
    busy = await daemon.create_key("amy@example.com", plan="tiny")
    await daemon.create_key("kim@example.com")
    await chat(daemon.url, busy, count=3)  # the third call is refused: its day is spent
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        ids = {a.email.split("@")[0]: a.id for a in await admin.list_accounts()}
        await admin.record_privacy_request("access", "amy@example.com", note="by mail")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_table(pilot, "accounts", "accounts", rows=3)
        await filter_table(pilot, table, "plan:pro", {ids["zed"]})
        await sort_table(pilot, table, "plan", [ids["kim"], ids["zed"], ids["amy"]])
        detail = await open_detail(pilot, table, ids["amy"], "amy@example.com", "Keys · 1 active of 1", "requests/day",
                                   "2 / 2", "Budget", "No budget", "Usage and billing", "Data-rights requests", "access")
        await close_detail(pilot, detail)
        await copy_from(pilot, table, ids["kim"], ids["kim"])

        quotas = await open_table(pilot, "quotas", "quota-accounts", rows=3)
        await filter_table(pilot, quotas, "kim", {ids["kim"]})
        await sort_table(pilot, quotas, "worst", [ids["zed"], ids["amy"]])  # zed and kim tie at 0 %
        detail = await open_detail(pilot, quotas, ids["amy"], "amy@example.com", "plan tiny")
        await close_detail(pilot, detail)
        await copy_from(pilot, quotas, ids["zed"], ids["zed"])


async def test_privacy_tables_filter_sort_detail_copy(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    await daemon.create_key("one@example.com")
    await daemon.create_key("two@example.com")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        first = await admin.record_privacy_request("access", "one@example.com", note="asked by post")
        second = await admin.record_privacy_request("correction", "two@example.com")
        await admin.publish_policy(effective="2099-01-01", summary="Logs kept 60 days.", material=True)
        key = (await admin.list_keys(account="two@example.com"))[0]
        await admin.suspend_key(key.id, reason="testing")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        requests = await open_table(pilot, "privacy", "privacy-requests", rows=2)
        await filter_table(pilot, requests, "kind:corr", {str(second.id)})
        await sort_table(pilot, requests, "kind", [str(first.id), str(second.id)])
        detail = await open_detail(pilot, requests, str(first.id), "access", "one@example.com", "asked by post", "days left")
        await close_detail(pilot, detail)
        await copy_from(pilot, requests, str(second.id), str(second.id))

        await pilot.press("t")
        audit = app.screen.query_one("#audit-log", RecordTable)
        await wait_until(pilot, lambda: audit.table.has_focus, what="the audit tab")
        entries = {r.item.action: r for r in audit.records}
        await filter_table(pilot, audit, "action:key.susp", {entries["key.suspended"].key})
        await sort_table(pilot, audit, "action", [entries["account.created"].key, entries["key.suspended"].key])
        detail = await open_detail(pilot, audit, entries["key.suspended"].key, "key.suspended", "reason", "testing", key.id)
        await close_detail(pilot, detail)
        await copy_from(pilot, audit, entries["key.suspended"].key, key.id)

        await pilot.press("t")
        policies = app.screen.query_one("#policy-versions", RecordTable)
        await wait_until(pilot, lambda: policies.table.has_focus and policies.records, what="the policies tab")
        (version,) = policies.records
        await filter_table(pilot, policies, "60 days", {version.key})
        await sort_table(pilot, policies, "version", [version.key])
        detail = await open_detail(pilot, policies, version.key, "Logs kept 60 days.", "upcoming")
        await close_detail(pilot, detail)
        await copy_from(pilot, policies, version.key, "v1")


async def test_live_calls_filter_by_status_account_model_and_show_what_refused_a_call(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    ada = await daemon.create_key("ada@example.com", plan="tiny")
    bob = await daemon.create_key("bob@example.com")
    await chat(daemon.url, ada, count=3)  # 200, 200, then 429: the day's two requests are spent
    await chat(daemon.url, bob, model="sim-claude")
    await chat(daemon.url, "sk-noor-" + "q" * 49)  # 401
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed = await open_table(pilot, "overview", "feed", rows=5)
        calls = {r.key: r.item for r in feed.records}
        by_status = {status: [k for k, c in calls.items() if c.status == status] for status in (200, 401, 429)}
        await filter_table(pilot, feed, "status:4xx", set(by_status[401] + by_status[429]))
        await filter_table(pilot, feed, "account:bob", {k for k, c in calls.items() if c.model == "sim-claude"})
        await filter_table(pilot, feed, "model:claude", {k for k, c in calls.items() if c.model == "sim-claude"})
        await filter_table(pilot, feed, "!status:200", set(by_status[401] + by_status[429]))
        ordered = sorted(calls, key=lambda k: calls[k].status)
        await sort_table(pilot, feed, "status", [by_status[200][0], by_status[401][0], by_status[429][0]])
        detail = await open_detail(pilot, feed, by_status[429][0], "Status: 429", "ada@example.com", "requests/day",
                                   "2 / 2", "Refused by a limit")
        await close_detail(pilot, detail)
        detail = await open_detail(pilot, feed, by_status[401][0], "Status: 401", "Authentication")
        await close_detail(pilot, detail)
        await copy_from(pilot, feed, ordered[0], str(calls[ordered[0]].seq))
        assert "hello" not in detail.text()  # never content


async def test_the_live_feed_shows_emails_from_its_first_row(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    key = await daemon.create_key("first-second@example.com")
    await chat(daemon.url, key, count=3)
    app = admin_app(daemon, tmp_path)
    seen: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        feed = app.screen.query_one("#feed", RecordTable)
        while not feed.records:  # watch every frame from the start
            await pilot.pause(0.01)
        seen = [str(feed.table.get_row(row.key)[1]) for row in feed.table.ordered_rows]
        assert seen and all(account == "first-second@example.com" for account in seen), seen
        newcomer = await daemon.create_key("newcomer@example.com")  # an account made after the dashboard started
        await chat(daemon.url, newcomer)
        await wait_until(pilot, lambda: "newcomer@example.com" in str(feed.table.get_row_at(0)[1]), timeout=5,
                         what="the new account's email within seconds (not at the next 30 s refresh)")


async def test_usage_and_billing_filter_sort_detail_copy(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG + '\n[prices."sim-gpt"]\ninput_per_million = 2.5\noutput_per_million = 10.0\n')
    one = await daemon.create_key("one@example.com")
    two = await daemon.create_key("two@example.com")
    await chat(daemon.url, one, count=3)
    await chat(daemon.url, two, model="sim-claude")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        usage = await open_table(pilot, "usage", "usage-table", rows=2)
        await filter_table(pilot, usage, "claude", {"sim-claude"})
        await sort_table(pilot, usage, "requests", ["sim-claude", "sim-gpt"])
        detail = await open_detail(pilot, usage, "sim-gpt", "Requests: 3", "By bucket")
        await close_detail(pilot, detail)
        await copy_from(pilot, usage, "sim-claude", "sim-claude")

        billing = await open_table(pilot, "billing", "billing", rows=2)
        ids = {r.item.account["email"]: r.key for r in billing.records}
        await filter_table(pilot, billing, "two@", {ids["two@example.com"]})
        await sort_table(pilot, billing, "estimate", [ids["two@example.com"], ids["one@example.com"]])
        detail = await open_detail(pilot, billing, ids["one@example.com"], "sim-gpt", "Billing is not configured")
        await close_detail(pilot, detail)
        await copy_from(pilot, billing, ids["two@example.com"], ids["two@example.com"])


async def test_self_service_keys_filter_sort_detail_copy(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    mine = await daemon.create_key("me@example.com", name="laptop")
    await daemon.create_key("me@example.com", name="ci")
    app = MeApp(daemon.url, mine, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_table(pilot, "account", "me-keys", rows=2)
        ids = {r.item.name: r.key for r in table.records}
        prefixes = {r.item.name: r.item.prefix for r in table.records}
        await filter_table(pilot, table, "laptop", {ids["laptop"]})
        await sort_table(pilot, table, "name", [ids["ci"], ids["laptop"]])
        detail = await open_detail(pilot, table, ids["ci"], "ci", "me@example.com")
        await close_detail(pilot, detail)
        await copy_from(pilot, table, ids["laptop"], prefixes["laptop"])


async def test_rotate_with_an_overlap_from_the_keys_screen(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    old = await daemon.create_key("rotate@example.com", name="laptop")
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_table(pilot, "keys", "keys")
        await pilot.press("o")
        from noor_tui.widgets.modals import ChoiceModal, ShowOnceKeyModal

        choice = await wait_for_screen(pilot, ChoiceModal)
        choice.choose("3600")
        choice.query_one("#confirm", Button).press()
        shown_once = await wait_for_screen(pilot, ShowOnceKeyModal)
        assert "keeps working until" in shown_once.about
        assert await chat(daemon.url, old) == [200]  # the old key still works during the overlap
        assert await chat(daemon.url, shown_once.secret) == [200]
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(table.records) == 2, what="old and new keys listed")


async def test_limits_dialog_shows_the_keys_limits_and_the_plans(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PLANS_CONFIG)
    await daemon.create_key("limits@example.com", plan="pro", limits={"requests_per_day": 500})
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_table(pilot, "keys", "keys")
        await wait_until(pilot, lambda: app.catalog is not None, what="the catalog")
        await pilot.press("l")
        from noor_tui.widgets.modals import LimitsModal

        dialog = await wait_for_screen(pilot, LimitsModal)
        assert dialog.query_one("#limit-requests_per_day", Input).value == "500"
        assert dialog.query_one("#limit-requests_per_minute", Input).placeholder == "plan: 600"
        assert dialog.query_one("#limit-tokens_per_day", Input).placeholder == "plan: no limit"
