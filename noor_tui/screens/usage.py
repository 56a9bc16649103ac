"""Usage: tokens, requests or cost over time by model, key or account, for the last hour to the last 90 days.

Costs are the daemon's: each call priced as it was metered, in its currency. A model nobody priced shows
"unpriced", never $0; a line whose calls were only partly priced carries a * (its cost leaves those out).
"""

from __future__ import annotations

from typing import ClassVar

from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.widgets import Static

from noor_daemon.client import UsageSeries
from noor_tui.details.usage import usage_detail
from noor_tui.formatting import bar, cost_text, integer, money, parse_time, percent, si
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.bar_chart import BarChart
from noor_tui.widgets.records import Column, Record, RecordTable
from noor_tui.widgets.segments import Segments
from noor_tui.widgets.stats import StatTile

RANGES = [("hour", "Hour"), ("day", "Day"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days")]
RANGE_WORDS = {"hour": "last hour", "day": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days", "90d": "last 90 days"}
TICK_FORMATS = {"hour": "%H:%M", "day": "%H:%M", "7d": "%a %Hh", "30d": "%b %d", "90d": "%b %d"}
METRICS = [("tokens", "Tokens"), ("requests", "Requests"), ("cost", "Cost")]
_SOURCES = {
    "memory": "from the daemon's memory (per minute)",
    "usage_hourly": "from the hourly rollups",
    "usage_daily": "from the daily rollups (the first and the current day's hours from the hourly ones)",
}


def bucket_labels(series: UsageSeries, tz, count: int = 6) -> list[str]:
    """A time label on every few buckets (about `count` in all), "" on the others."""
    buckets = series.buckets
    every = max(1, len(buckets) // count)
    labels = []
    for index, bucket in enumerate(buckets):
        moment = parse_time(bucket) if index % every == 0 else None
        labels.append(moment.astimezone(tz).strftime(TICK_FORMATS.get(series.range, "%m-%d")) if moment else "")
    return labels


class UsageScreen(NoorScreen):
    MODE = "usage"
    POLL_SECONDS = 10.0
    GROUPS: ClassVar[list[tuple[str, str]]] = [("model", "Model"), ("key", "Key"), ("account", "Account")]
    HELP = (
        "Tokens, requests or cost per bucket, stacked by model, key or account, for the last hour (per minute, "
        "from the daemon's memory) up to the last 90 days (from the hourly and daily rollups), with totals and the "
        "estimated cost of each line (each call priced when it was metered: `noor prices`). A model with no "
        "price shows \"unpriced\", never $0; a * marks a cost that leaves out some unpriced calls."
    )
    BINDINGS = [
        Binding("left_square_bracket", "range(-1)", "◀ Range"),
        Binding("right_square_bracket", "range(1)", "Range ▶"),
        Binding("g", "next_group", "Group by"),
        Binding("t", "next_metric", "Metric"),
    ]
    PALETTE = [
        *[(f"Usage: {words}", f"Show usage over the {words}", f"set_range('{value}')") for value, words in RANGE_WORDS.items()],
        ("Usage: group by model", "One series per model", "set_group('model')"),
        ("Usage: group by key", "One series per API key", "set_group('key')"),
        ("Usage: group by account", "One series per account", "set_group('account')"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.range = "day"
        self.group = "model"
        self.metric = "tokens"
        self.series: UsageSeries | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="usage-controls"):
            yield Segments("Range", RANGES, self.range, id="ranges", short={"7d": "7d", "30d": "30d", "90d": "90d"})
            yield Segments("By", self.GROUPS, self.group, id="groups")
            yield Segments("Show", METRICS, self.metric, id="metrics")
        with Horizontal(id="usage-stats"):
            yield StatTile("Requests", id="usage-requests", spark=False)
            yield StatTile("Tokens in/out", id="usage-tokens", spark=False)
            yield StatTile("Errors", id="usage-errors", spark=False)
            yield StatTile("Estimated cost", id="usage-cost", spark=False)
        with Container(id="usage-chart-box", classes="panel") as box:
            box.border_title = "Tokens"
            yield BarChart(id="usage-chart")
        with Container(id="usage-table-box", classes="panel") as table_box:
            table_box.border_title = "Totals"
            yield RecordTable(self._columns(), id="usage-table", zebra=False, empty="No calls in this range.")
        yield Static("", id="usage-note", classes="note")

    def _columns(self) -> list[Column]:
        """The totals' columns; a narrow table leaves out the share, then the errors."""
        return [
            Column("swatch", "", 1), Column("label", self._group_label(), 16, grow=1), Column("requests", "Requests", 8, right=True),
            Column("errors", "Errors", 6, right=True, drop=1), Column("in", "In", 6, right=True),
            Column("out", "Out", 6, right=True), Column("share", "Share", 13, drop=2), Column("cost", "Est. cost", 9, right=True),
        ]

    def _group_label(self) -> str:
        return dict(self.GROUPS).get(self.group, self.group)

    async def fetch(self) -> UsageSeries:
        return await self.admin_app.admin.usage_series(self.range, self.group, limit=8)

    def show(self, data: UsageSeries) -> None:
        if data.range != self.range or data.group != self.group:
            return  # an answer for a choice the user has already changed
        self.series = data
        totals = data.totals
        words = RANGE_WORDS[data.range]
        self.query_one("#usage-requests", StatTile).show(integer(totals.requests), note=words)
        self.query_one("#usage-tokens", StatTile).show(
            f"{si(totals.prompt_tokens)} · {si(totals.completion_tokens)}",
            note=f"{si(totals.prompt_tokens + totals.completion_tokens)} total",
        )
        error_rate = totals.errors / totals.requests if totals.requests else None
        self.query_one("#usage-errors", StatTile).show(
            integer(totals.errors), note=percent(error_rate),
            level="bad" if (error_rate or 0) >= 0.05 else "warn" if (error_rate or 0) >= 0.01 else "",
        )
        self.noor.currency = data.currency
        if not data.priced:
            cost, note = "no prices", "add \\[prices] to the config"
        else:
            cost = money(totals.cost, data.currency)
            note = f"+{len(totals.unpriced_models)} unpriced" if totals.unpriced_models else "all priced"
        self.query_one("#usage-cost", StatTile).show(cost, note=note)
        self._chart(data)
        self._table(data)
        unpriced = ", ".join(totals.unpriced_models)
        source = _SOURCES.get(data.source, "from the rollups")
        self.query_one("#usage-note", Static).update(
            f"{len(data.buckets)} × {_bucket_words(data.bucket_seconds)}, {source}"
            + (f" · no price for: {unpriced} (* leaves them out)" if unpriced else "")
        )

    def _values(self, line) -> list[float]:
        if self.metric == "cost":
            return line.cost
        return line.tokens if self.metric == "tokens" else line.requests

    def _chart(self, data: UsageSeries) -> None:
        chart = self.query_one("#usage-chart", BarChart)
        stacks = {line.label: [float(v) for v in self._values(line)] for line in data.series}
        count = 6 if self.app.size.width >= 120 else 4
        chart.show(stacks, bucket_labels(data, self.noor.tz, count), fmt=self._axis_format(data))
        metric = dict(METRICS)[self.metric]
        self.query_one("#usage-chart-box").border_title = f"{metric} per {_bucket_words(data.bucket_seconds)} by {self._group_label().lower()} · {RANGE_WORDS[data.range]}"

    def _table(self, data: UsageSeries) -> None:
        table = self.query_one("#usage-table", RecordTable)
        chart = self.query_one("#usage-chart", BarChart)
        grand = sum(sum(self._values(line)) for line in data.series) or 1
        table.columns = self._columns()
        records = []
        for index, line in enumerate(data.series):
            t = line.totals
            share = sum(self._values(line)) / grand
            colour = Style(color=RichColor.from_rgb(*chart.colour(index)))
            records.append(Record(
                line.key,
                {
                    "swatch": Text("█", style=colour),
                    "label": line.label,
                    "requests": integer(t.requests),
                    "errors": Text(integer(t.errors), justify="right", style="red" if t.errors else "dim"),
                    "in": si(t.prompt_tokens),
                    "out": si(t.completion_tokens),
                    "share": Text(bar(share, 8), style=colour) + Text(f" {share * 100:3.0f}%"),
                    "cost": Text(cost_text(t.cost, t.unpriced_models, data.currency), justify="right",
                                 style="dim" if t.cost is None else ""),
                },
                item=line,
                sort={"requests": t.requests, "errors": t.errors, "in": t.prompt_tokens, "out": t.completion_tokens,
                      "share": share, "cost": t.cost, "swatch": index},
                fields={self.group: line.key},
                copy=line.key,
            ))
        table.empty = f"No calls in the {RANGE_WORDS[data.range]}."
        table.show(records)

    @on(RecordTable.Opened, "#usage-table")
    def _open(self, event: RecordTable.Opened) -> None:
        if self.series is not None:
            self.app.push_screen(usage_detail(event.record.item, self.series, self._group_label(), self.noor.tz))

    def _axis_format(self, data: UsageSeries):
        """The chart's axis in money for the cost metric, in SI units otherwise."""
        if self.metric == "cost":
            return lambda value: money(value, data.currency, compact=True)
        return si

    # -- controls -------------------------------------------------------------------

    @on(Segments.Changed, "#ranges")
    def _range_changed(self, event: Segments.Changed) -> None:
        self.range = event.value
        self.POLL_SECONDS = 5.0 if self.range == "hour" else 10.0
        self.poll()

    @on(Segments.Changed, "#groups")
    def _group_changed(self, event: Segments.Changed) -> None:
        self.group = event.value
        self.poll()

    @on(Segments.Changed, "#metrics")
    def _metric_changed(self, event: Segments.Changed) -> None:
        self.metric = event.value
        if self.series is not None:
            self.show(self.series)

    def action_range(self, delta: int) -> None:
        self.query_one("#ranges", Segments).step(delta)

    def action_set_range(self, value: str) -> None:
        self.query_one("#ranges", Segments).select(value)

    def action_next_group(self) -> None:
        self.query_one("#groups", Segments).step(1)

    def action_set_group(self, value: str) -> None:
        self.query_one("#groups", Segments).select(value)

    def action_next_metric(self) -> None:
        self.query_one("#metrics", Segments).step(1)


def _bucket_words(seconds: int) -> str:
    if seconds % 86400 == 0:
        return "day" if seconds == 86400 else f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{seconds // 3600} hours"
    return "minute" if seconds == 60 else f"{seconds // 60} minutes"
