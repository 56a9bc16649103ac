"""A quota report as a table: every limit of an account and of its keys, with a bar, what is left, and when it resets.

A budget is a limit in money: its row reads "$3.41 of $20.00" in the report's currency, left "$16.59", and
its bar is coloured as any other limit's.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from noor_daemon.client import LimitStatus, QuotaReport
from noor_tui.formatting import bar, integer, money, si, until

LIMIT_NAMES = {
    "requests_per_minute": "requests/min",
    "tokens_per_minute": "tokens/min",
    "concurrent_requests": "concurrent",
    "requests_per_day": "requests/day",
    "tokens_per_day": "tokens/day",
    "tokens_per_month": "tokens/month",
    "budget_per_day": "budget/day",
    "budget_per_month": "budget/month",
}


def amount_text(row: LimitStatus, value: float, currency: str) -> str:
    """One of a row's figures: money for a budget, a count otherwise (SI from 10,000 on, either way)."""
    if row.is_budget:
        return money(value, currency, compact=True)
    return si(value) if row.value >= 10_000 else integer(value)


def used_text(row: LimitStatus, currency: str) -> str:
    """"$3.41 of $20.00" for a budget, "1,204 / 5,000" for a count."""
    if row.is_budget:
        return f"{amount_text(row, row.used, currency)} of {amount_text(row, row.value, currency)}"
    return f"{amount_text(row, row.used, currency)} / {amount_text(row, row.value, currency)}"


def meter(share: float, width: int, style: str) -> Text:
    """A bar on a dim track: `█████▍──────────`."""
    filled = bar(share, width).rstrip()
    return Text(filled, style=style) + Text("─" * (width - len(filled)), style="dim")


def fraction(row: LimitStatus) -> float:
    return row.used / row.value if row.value else 0.0


def level_style(value: float) -> str:
    if value >= 0.9:
        return "bold red"
    if value >= 0.7:
        return "yellow"
    return "green"


def worst(report: QuotaReport) -> float:
    """The fullest limit of the account or any of its keys, 0..1."""
    rows = [*report.limits, *(row for key in report.keys for row in key.limits)]
    return max((fraction(r) for r in rows), default=0.0)


def state_text(state: str) -> Text:
    style = {"active": "green", "suspended": "bold yellow", "revoked": "red", "expired": "dim"}.get(state, "")
    mark = {"active": "●", "suspended": "‖", "revoked": "✗", "expired": "○"}.get(state, "•")
    return Text(f"{mark} {state}", style=style)


class QuotaTable(DataTable):
    """Scope · limit · bar · used / limit · left · resets."""

    DEFAULT_CSS = """
    QuotaTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", show_cursor=False, zebra_stripes=False)
        self.wide = True
        self.bar_width = 16
        self._report: tuple[QuotaReport, datetime] | None = None

    def _lay_out(self) -> None:
        """Under 110 columns the scope, the bar and the reset time get narrower; every column stays."""
        self.wide = self.app.size.width >= 110
        self.bar_width = 16 if self.wide else 5
        self.clear(columns=True)
        self.add_column("Scope", key="scope", width=24 if self.wide else 14)
        self.add_column("Limit", key="limit", width=13 if self.wide else 12)
        self.add_column("Use", key="bar", width=self.bar_width + 5)
        self.add_column("Used / limit", key="used", width=19 if self.wide else 15)
        self.add_column("Left", key="left", width=9 if self.wide else 8)
        self.add_column("Resets", key="resets", width=10 if self.wide else 7)

    def on_resize(self) -> None:
        if self._report is not None and self.wide != (self.app.size.width >= 110):
            self.show(*self._report)

    def _row(self, row: LimitStatus, now: datetime, currency: str) -> list:
        share = fraction(row)
        style = level_style(share)
        cells = [
            LIMIT_NAMES.get(row.limit, row.limit),
            meter(share, self.bar_width, style) + Text(f" {share * 100:3.0f}%", style=style),
            used_text(row, currency),
        ]
        cells.append(Text(amount_text(row, row.remaining, currency), style=style if share >= 0.9 else ""))
        cells.append(until(row.resets_at, now) if row.resets_at else "–")
        return cells

    def _blank(self, scope: Text, note: str) -> list:
        return [scope, Text(note, style="dim")] + [""] * (len(self.columns) - 2)

    def show(self, report: QuotaReport, now: datetime) -> None:
        """Replace the rows (a report is small: a few limits per scope)."""
        self._report = (report, now)
        with self.app.batch_update():
            self._lay_out()
            account = report.account
            title = Text("Account", style="bold")
            if account.status == "suspended":
                title.append(" ‖ suspended", style="bold yellow")
            if not report.limits:
                self.add_row(*self._blank(title, "no limits"), key="account:none")
            for index, row in enumerate(report.limits):
                self.add_row(title if index == 0 else "", *self._row(row, now, report.currency), key=f"account:{row.limit}")
            for kq in report.keys:
                key = kq.key
                label = Text(f"  {key.prefix}" if self.wide else key.prefix)
                if key.name and self.wide:
                    label.append(f" {key.name}", style="dim")
                if key.state != "active":
                    label.append(" ")
                    label.append_text(state_text(key.state))
                if not kq.limits:
                    self.add_row(*self._blank(label, "plan only"), key=f"key:{key.id}:none")
                for index, row in enumerate(kq.limits):
                    self.add_row(label if index == 0 else "", *self._row(row, now, report.currency), key=f"key:{key.id}:{row.limit}")
