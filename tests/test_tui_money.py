"""The dashboard's money against the ledger: budget bars, the overview's spend, cost columns, each call's cost.

A real daemon on loopback serves the simulator's models priced by `[prices]` and the stand-in upstream's model
that nobody priced; calls go through the OpenAI SDK; the dashboard runs headless against it. Every amount it
shows is the one the ledger holds (`usage_events.cost`, exact picounits) and `/admin/v1/spend` reports, in the
daemon's currency; a model with no price shows "unpriced", never $0. The daemon runs on a clock the test moves:
some calls late on the 15th of June, the rest early on the 16th, so a day's spend and the month's differ.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

import openai
import pytest
from gateway_helpers import openai_client
from rich.text import Text
from standin_upstream import standin_config
from tui_helpers import wait_until

from noor_daemon.client import AdminClient
from noor_daemon.clock import ManualClock
from noor_daemon.domain.money import UNIT
from noor_tui.app import AdminApp, MeApp
from noor_tui.formatting import money
from noor_tui.widgets.feed import COST_DECIMALS
from noor_tui.widgets.detail import DetailScreen
from noor_tui.widgets.feed import LiveFeed
from noor_tui.widgets.quota import QuotaTable
from noor_tui.widgets.records import RecordTable, plain
from noor_tui.widgets.spend import SpendTable
from noor_tui.widgets.stats import StatTile

pytestmark = pytest.mark.engine_independent

SIZE = (160, 48)
EVENING = datetime(2025, 6, 15, 20, 0, tzinfo=UTC).timestamp()
TODAY_MS = int(datetime(2025, 6, 16, tzinfo=UTC).timestamp() * 1000)
TEAM_DAY, TEAM_MONTH, CI_DAY = 0.005, 0.02, 0.001

PRICED = """
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

[prices."sim-gpt"]
input_per_million = 2.0
output_per_million = 8.0

[prices."sim-claude"]
input_per_million = 10.0
output_per_million = 40.0

[plans.free]

[plans.team]
budget_per_day = %s
budget_per_month = %s
""" % (TEAM_DAY, TEAM_MONTH)


def cell(table, row_key: str, column: str) -> str:
    """A DataTable cell as plain text."""
    return plain(table.get_cell(row_key, column))


async def ask(client, model: str, text: str = "what does this cost") -> None:
    await client.chat.completions.create(model=model, max_tokens=20, messages=[{"role": "user", "content": text}])


def ledger_sums(rows: list[dict], key_of) -> dict[str, int]:
    """Picounits per account, key or model, as the ledger holds them (priced calls only)."""
    sums: dict[str, int] = defaultdict(int)
    for row in rows:
        if row["cost"] is not None:
            sums[key_of(row)] += row["cost"]
    return sums


async def test_every_amount_the_admin_dashboard_shows_is_the_ledgers(start_daemon, standin, tmp_path) -> None:
    clock = ManualClock(start=EVENING)
    daemon = await start_daemon(standin_config(standin, extra=PRICED), clock=clock)
    team = await daemon.create_key("team@example.com", plan="team", name="main")
    ci = await daemon.create_key("team@example.com", name="ci", limits={"budget_per_day": CI_DAY})
    free = await daemon.create_key("free@example.com")
    for _ in range(3):
        await ask(openai_client(daemon, team), "sim-gpt")
    for _ in range(2):
        await ask(openai_client(daemon, free), "gpt-test")  # the stand-in's model: nobody priced it
    clock.advance(8 * 3600)  # 04:00 on the 16th: a new day, the same month
    await ask(openai_client(daemon, team), "sim-claude")
    refused = 0
    for _ in range(12):  # the ci key's own budget refuses it before the account's does
        try:
            await ask(openai_client(daemon, ci), "sim-gpt")
        except openai.RateLimitError as error:
            assert error.code == "insufficient_quota" and "This key's budget per day" in str(error.message)
            refused += 1
            break
    assert refused == 1
    await ask(openai_client(daemon, free), "sim-gpt")

    rows = await daemon.usage_rows()
    today = [r for r in rows if r["ts"] >= TODAY_MS]
    assert any(r["cost"] is None and r["prompt_tokens"] for r in rows) and 0 < len(today) < len(rows)
    total, total_today = sum(r["cost"] or 0 for r in rows), sum(r["cost"] or 0 for r in today)
    by_account, by_account_today = ledger_sums(rows, lambda r: r["account_id"]), ledger_sums(today, lambda r: r["account_id"])
    by_key = ledger_sums(today, lambda r: r["key_id"])  # the ci key only called today
    by_model = ledger_sums(rows, lambda r: r["model"])
    admin = AdminClient(daemon.url, daemon.admin_token)
    try:
        day, month = await admin.spend(period="day"), await admin.spend(period="month")
        keys = {k.name: k for k in await admin.list_keys()}
        accounts = {a.email: a for a in await admin.list_accounts()}
    finally:
        await admin.close()
    team_id, ci_key = accounts["team@example.com"].id, keys["ci"]
    assert (day.total, month.total) == (total_today / UNIT, total / UNIT)  # /admin/v1/spend says what the ledger holds
    assert {line.account: line.cost for line in day.data} == {a: c / UNIT for a, c in by_account_today.items()}
    assert by_key[ci_key.id] / UNIT <= CI_DAY and by_account_today[team_id] / UNIT <= TEAM_DAY  # never overspent

    app = AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        overview = app.screen
        await wait_until(pilot, lambda: overview.spend is not None, timeout=15, what="the overview's spend")
        tile = overview.query_one("#stat-spend", StatTile)
        await wait_until(pilot, lambda: tile.value_text == money(total_today / UNIT), what="today's spend in its tile")
        assert tile.border_subtitle == f"month {money(total / UNIT)}"
        spend_table = overview.query_one("#spend", SpendTable)
        day_share, month_share = by_account_today[team_id] / UNIT / TEAM_DAY, by_account[team_id] / UNIT / TEAM_MONTH
        assert cell(spend_table, team_id, "today") == money(by_account_today[team_id] / UNIT)
        assert cell(spend_table, team_id, "month") == money(by_account[team_id] / UNIT)
        fullest = f"{day_share * 100:3.0f}% day" if day_share >= month_share else f"{month_share * 100:3.0f}% month"
        assert cell(spend_table, team_id, "budget").endswith(fullest)
        free_id = accounts["free@example.com"].id
        assert cell(spend_table, free_id, "month") == money(by_account[free_id] / UNIT) + "*"  # leaves out unpriced calls
        assert cell(spend_table, free_id, "budget") == "–"  # no budget

        # the live feed: each call's cost as metered, "unpriced" for the model nobody priced
        feed = overview.query_one("#feed", LiveFeed)
        await wait_until(pilot, lambda: len(feed.records) == len(rows), what="every call in the feed")
        shown = sorted(plain(r.cells["cost"]) for r in feed.records)
        expected = sorted(money(r["cost"] / UNIT, max_decimals=COST_DECIMALS) if r["cost"] is not None
                          else "unpriced" if r["prompt_tokens"] else "–" for r in rows)
        assert shown == expected
        claude_call = next(r for r in feed.records if r.item.model == "sim-claude")
        claude_row = next(r for r in rows if r["model"] == "sim-claude")
        feed.select(claude_call.key)
        feed.table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the call's detail")
        assert f"Cost: {money(claude_row['cost'] / UNIT)}" in app.screen.text()
        await pilot.press("escape")

        # a call the ci key's budget refused: its detail names the budgets as they are now
        feed.set_filter("status:429")
        assert len(feed.shown) == 1
        feed.table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.loaded, what="the 429's detail")
        detail = app.screen.text()
        assert f"budget/day | {money(by_key[ci_key.id] / UNIT)} of {money(CI_DAY)}" in detail
        await pilot.press("escape")
        feed.set_filter("")

        # $: every account, key and model, with budgets
        await pilot.press("dollar_sign")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.loaded, what="the spend panel")
        panel = app.screen.text()
        assert f"{ci_key.prefix} | {money(by_key[ci_key.id] / UNIT)} |" in panel and money(CI_DAY) in panel
        assert "gpt-test | – | unpriced | 2 | 2" in panel  # none today, two this month, both unpriced: never $0
        await pilot.press("escape")

        # quotas: the account's budgets and the ci key's own, as bars in money
        await app.switch_mode("quotas")
        quotas = app.screen
        await wait_until(pilot, lambda: quotas.loaded, what="the quotas screen")
        quotas.query_one("#quota-accounts", RecordTable).select(team_id)
        quota_table = quotas.query_one("#quota-detail", QuotaTable)
        await wait_until(pilot, lambda: quotas.selected == team_id and quota_table.row_count, what="the team's limits")
        spent_today, spent = by_account_today[team_id] / UNIT, by_account[team_id] / UNIT
        assert cell(quota_table, "account:budget_per_day", "used") == f"{money(spent_today)} of {money(TEAM_DAY)}"
        assert cell(quota_table, "account:budget_per_day", "left") == money(TEAM_DAY - spent_today)
        assert cell(quota_table, "account:budget_per_month", "used") == f"{money(spent)} of {money(TEAM_MONTH)}"
        assert cell(quota_table, f"key:{ci_key.id}:budget_per_day", "used") == f"{money(by_key[ci_key.id] / UNIT)} of $0.001"
        bar = quota_table.get_cell(f"key:{ci_key.id}:budget_per_day", "bar")
        assert isinstance(bar, Text) and bar.plain.endswith(f"{by_key[ci_key.id] / UNIT / CI_DAY * 100:3.0f}%")
        assert quota_table.get_cell("account:budget_per_day", "resets")  # when the day's budget starts again

        # usage: a cost per model, "unpriced" where nobody priced it, the total; filter and sort by cost
        await app.switch_mode("usage")
        usage = app.screen
        await wait_until(pilot, lambda: usage.loaded, what="the usage screen")
        usage_table = usage.query_one("#usage-table", RecordTable)
        costs = {r.key: plain(r.cells["cost"]) for r in usage_table.records}
        assert costs == {"sim-gpt": money(by_model["sim-gpt"] / UNIT), "sim-claude": money(by_model["sim-claude"] / UNIT),
                         "gpt-test": "unpriced"}
        assert usage.query_one("#usage-cost", StatTile).value_text == money(total / UNIT)
        usage_table.table.focus()
        await pilot.press("slash", *"cost:unpriced", "enter")
        await wait_until(pilot, lambda: [r.key for r in usage_table.shown] == ["gpt-test"], what="the filter on cost")
        await pilot.press("escape")
        while usage_table.sort_key != "cost":
            await pilot.press("greater_than_sign")
        cheapest_first = [r.key for r in usage_table.shown]
        assert cheapest_first == sorted(by_model, key=lambda m: by_model[m]) + ["gpt-test"]  # unpriced last
        await pilot.press("t", "t")  # tokens → requests → cost
        await wait_until(pilot, lambda: usage.metric == "cost", what="the cost metric")
        chart = usage.query_one("#usage-chart")
        assert sum(chart.stacks["sim-claude"]) == pytest.approx(by_model["sim-claude"] / UNIT)
        usage_table.select("sim-gpt")
        usage_table.table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the usage line's detail")
        assert f"Estimated cost: {money(by_model['sim-gpt'] / UNIT)}" in app.screen.text()


async def test_the_self_service_view_shows_its_budgets_and_costs_in_the_daemons_currency(start_daemon, standin, tmp_path) -> None:
    daemon = await start_daemon(standin_config(standin, extra=PRICED + '\n[budgets]\ncurrency = "EUR"\n'),
                                clock=ManualClock(start=time.time()))
    mine = await daemon.create_key("me@example.com", plan="team", name="laptop", limits={"budget_per_day": CI_DAY})
    for _ in range(2):
        await ask(openai_client(daemon, mine), "sim-gpt")
    rows = await daemon.usage_rows()
    spent = sum(r["cost"] for r in rows) / UNIT
    app = MeApp(daemon.url, mine, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.loaded, what="the account screen")
        assert app.currency == "EUR"
        table = screen.query_one("#me-quota", QuotaTable)
        assert cell(table, "account:budget_per_month", "used") == f"{money(spent, 'EUR')} of €0.02"
        key_id = rows[0]["key_id"]
        assert cell(table, f"key:{key_id}:budget_per_day", "used") == f"{money(spent, 'EUR')} of €0.001"
        assert cell(table, f"key:{key_id}:budget_per_day", "left") == money(CI_DAY - spent, "EUR")

        await app.switch_mode("usage")
        usage = app.screen
        await wait_until(pilot, lambda: usage.loaded, what="own usage")
        costs = {r.key: plain(r.cells["cost"]) for r in usage.query_one("#usage-table", RecordTable).records}
        assert costs == {"sim-gpt": money(spent, "EUR")} and costs["sim-gpt"].startswith("€")


def test_amounts_are_written_with_the_currency_and_enough_digits() -> None:
    assert money(3.41) == "$3.41" and money(20) == "$20.00" and money(1234.5) == "$1,234.50"
    assert money(0.0034) == "$0.0034" and money(0.000255) == "$0.00026"  # a call costs a fraction of a cent
    assert money(0.0999) == "$0.10" and money(0) == "$0.00" and money(None) == "–"
    assert money(3.41, "EUR") == "€3.41" and money(1234, "JPY") == "¥1,234" and money(3.5, "CHF") == "CHF 3.50"
    assert money(0.004, "KWD") == "KWD 0.004" and money(12_345.6, compact=True) == "$12.3k"
    assert money(1e-12) == "<$0.00000001"
    # The live feed's narrow cell: an embedding's cost says how small it is instead of being cut off.
    assert money(8e-8, max_decimals=COST_DECIMALS) == "<$0.00001" and money(6.1e-6, max_decimals=COST_DECIMALS) == "$0.00001"
    assert money(0.0034, max_decimals=COST_DECIMALS) == "$0.0034"
