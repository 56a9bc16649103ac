"""Spend against budgets: today's and this month's cost per account (or key), merged from the daemon's two
`/admin/v1/spend` answers, and the overview's table of the accounts that spent most.

Costs and budgets are the daemon's (its ledger's rollups, in its currency): nothing is priced here.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from noor_daemon.client import Spend, SpendLine
from noor_tui.formatting import money, truncate
from noor_tui.widgets.quota import level_style, meter


@dataclass(frozen=True)
class SpendRow:
    """One account, key or model: what it spent today and this month, and its budgets when it has any."""

    ident: str
    label: str
    today: float | None
    """None: no call today."""
    month: float
    day_budget: float | None
    month_budget: float | None
    unpriced_calls: int
    """This month's calls that used tokens of a model nobody priced (not in `month`)."""
    unpriced_today: int
    requests: int

    @property
    def fullest(self) -> tuple[float, str] | None:
        """The fuller of its budgets: (share spent 0..1, "day" or "month"), None without a budget."""
        shares = []
        if self.day_budget:
            shares.append(((self.today or 0.0) / self.day_budget, "day"))
        if self.month_budget:
            shares.append((self.month / self.month_budget, "month"))
        return max(shares) if shares else None


@dataclass(frozen=True)
class SpendNow:
    """This UTC day's and this calendar month's spend, grouped the same way (by account, key or model)."""

    day: Spend
    month: Spend

    @property
    def currency(self) -> str:
        return self.month.currency

    def rows(self) -> list[SpendRow]:
        """Every line of the month (a day's lines are all in its month), the biggest spender first."""
        today = {_ident(line): line for line in self.day.data}
        rows = []
        for line in self.month.data:
            day_line = today.get(_ident(line))
            rows.append(SpendRow(
                ident=_ident(line), label=line.label, today=day_line.cost if day_line else None, month=line.cost,
                day_budget=day_line.budget if day_line else None, month_budget=line.budget,
                unpriced_calls=line.unpriced_calls, unpriced_today=day_line.unpriced_calls if day_line else 0,
                requests=line.requests,
            ))
        return rows

    @property
    def unpriced_calls(self) -> int:
        return sum(line.unpriced_calls for line in self.month.data)

    def fullest(self) -> float:
        """The fullest budget of any line, 0..1 (0 without budgets)."""
        return max((row.fullest[0] for row in self.rows() if row.fullest), default=0.0)


def _ident(line: SpendLine) -> str:
    return line.account or line.key or line.model or ""


def budget_cell(row: SpendRow, width: int = 5) -> Text:
    """`███── 62% month` for the fuller budget, a dim dash without one."""
    fullest = row.fullest
    if fullest is None:
        return Text("–", style="dim")
    share, period = fullest
    style = level_style(share)
    return meter(share, width, style) + Text(f" {share * 100:3.0f}% {period}", style=style)


def amount_cell(value: float | None, currency: str, unpriced_calls: int = 0) -> Text:
    """A cost, right-aligned; a * when some calls of it had no price (the figure leaves them out), and
    "unpriced" when none of them had one (never a made-up $0); a dash without calls."""
    if value is None:
        return Text("–", justify="right", style="dim")
    if unpriced_calls and not value:
        return Text("unpriced", justify="right", style="dim")
    text = money(value, currency, compact=True) + ("*" if unpriced_calls else "")
    return Text(text, justify="right")


class SpendTable(DataTable):
    """Account · today · this month · budget: the few accounts that spent most this month."""

    DEFAULT_CSS = """
    SpendTable { height: 1fr; overflow-x: hidden; }
    """

    def __init__(self, *, id: str | None = None, top: int = 5) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=False)
        self.top = top

    def on_mount(self) -> None:
        self.add_column("Account", key="label", width=12)
        self.add_column("Today", key="today", width=7)
        self.add_column("Month", key="month", width=8)
        self.add_column("Budget", key="budget", width=15)

    def show(self, spend: SpendNow) -> None:
        rows = spend.rows()
        with self.app.batch_update():
            self.clear()
            for row in rows[: self.top]:
                self.add_row(
                    Text(truncate(row.label, 12)), amount_cell(row.today, spend.currency, row.unpriced_today),
                    amount_cell(row.month, spend.currency, row.unpriced_calls), budget_cell(row, 4), key=row.ident,
                )
            if len(rows) > self.top:
                rest = rows[self.top :]
                self.add_row(
                    Text(f"{len(rest)} more", style="dim"), amount_cell(sum(r.today or 0.0 for r in rest), spend.currency),
                    amount_cell(sum(r.month for r in rest), spend.currency), Text(""), key="(rest)",
                )
