"""Spend in full (the overview's `$`): today's and this month's totals, then per account, per key and per model,
each next to its budgets, as the daemon's `/admin/v1/spend` reports them."""

from __future__ import annotations

import asyncio

from rich.text import Text

from noor_daemon.client import AdminClient
from noor_tui.formatting import integer, money
from noor_tui.widgets.detail import DetailScreen, Section, listing
from noor_tui.widgets.spend import SpendNow, amount_cell, budget_cell

TOP = 20


def totals_section(spend: SpendNow) -> Section:
    currency = spend.currency
    rows: list[tuple[str, object]] = [
        ("Today", f"{money(spend.day.total, currency)}  ({spend.day.start[:10]}, UTC)"),
        ("This month", f"{money(spend.month.total, currency)}  ({spend.month.start[:7]})"),
        ("Currency", currency),
    ]
    if spend.unpriced_calls:
        rows.append(("Unpriced calls", Text(f"{integer(spend.unpriced_calls)} this month: a model with no price "
                                             "(noor prices); they are not in these figures", style="yellow")))
    return Section("Spend", rows, note=f"{spend.month.note[:1].upper()}{spend.month.note[1:]}.")


def lines_section(title: str, spend: SpendNow, with_budgets: bool) -> Section:
    rows = spend.rows()
    if not rows:
        return Section(title, note="Nothing spent this month.")
    headers = ["", "Today", "This month", "Calls"] + (["Budget/day", "Budget/month", "Fullest"] if with_budgets else ["Unpriced"])
    table = listing(*headers)
    currency = spend.currency
    for row in rows[:TOP]:
        cells: list[object] = [
            Text(row.label), amount_cell(row.today, currency, row.unpriced_today),
            amount_cell(row.month, currency, row.unpriced_calls), integer(row.requests),
        ]
        if with_budgets:
            cells += [money(row.day_budget, currency), money(row.month_budget, currency), budget_cell(row)]
        else:
            cells.append(integer(row.unpriced_calls) if row.unpriced_calls else "")
        table.add_row(*cells)
    note = f"The {TOP} that spent most of {len(rows)}." if len(rows) > TOP else ""
    return Section(title, table=table, note=note)


def spend_detail(admin: AdminClient, spend: SpendNow | None) -> DetailScreen:
    """The accounts' spend shows at once (the overview has it); keys and models are asked for as the panel opens."""
    sections = [totals_section(spend), lines_section("Accounts", spend, with_budgets=True)] if spend else []

    async def load() -> list[Section]:
        accounts = spend
        if accounts is None:
            accounts = SpendNow(*await asyncio.gather(admin.spend(period="day"), admin.spend(period="month")))
        day_keys, month_keys, day_models, month_models = await asyncio.gather(
            admin.spend(period="day", by="key"), admin.spend(period="month", by="key"),
            admin.spend(period="day", by="model"), admin.spend(period="month", by="model"),
        )
        more = [] if spend else [totals_section(accounts), lines_section("Accounts", accounts, with_budgets=True)]
        more.append(lines_section("Keys", SpendNow(day_keys, month_keys), with_budgets=True))
        more.append(lines_section("Models", SpendNow(day_models, month_models), with_budgets=False))
        return more

    copy = f"{spend.month.total} {spend.currency}" if spend else ""
    return DetailScreen("Spend · today and this month", sections, copy=copy, load=load)
