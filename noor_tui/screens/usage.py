"""Usage: tokens and requests over time by model, key or account, for the last hour to the last 90 days, with estimated cost."""

from __future__ import annotations

from typing import ClassVar

from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.widgets import DataTable, Static

from noor_daemon.client import UsageSeries
from noor_tui.formatting import bar, integer, money, parse_time, percent, si, truncate
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.cells import Column, lay_out, sync_rows
from noor_tui.widgets.bar_chart import BarChart
from noor_tui.widgets.segments import Segments
from noor_tui.widgets.stats import StatTile

RANGES = [("hour", "Hour"), ("day", "Day"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days")]
RANGE_WORDS = {"hour": "last hour", "day": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days", "90d": "last 90 days"}
TICK_FORMATS = {"hour": "%H:%M", "day": "%H:%M", "7d": "%a %Hh", "30d": "%b %d", "90d": "%b %d"}
METRICS = [("tokens", "Tokens"), ("requests", "Requests")]


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
        "Tokens or requests per bucket, stacked by model, key or account, for the last hour (per minute, "
        "from the daemon's memory) up to the last 90 days (from the hourly rollups), with totals and an "
        "estimated cost from the `[prices]` table of the daemon's config."
    )
    BINDINGS = [
        Binding("left_square_bracket", "range(-1)", "◀ Range"),
        Binding("right_square_bracket", "range(1)", "Range ▶"),
        Binding("g", "next_group", "Group by"),
        Binding("t", "next_metric", "Tokens/requests"),
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
            yield Segments("Range", RANGES, self.range, id="ranges")
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
            yield DataTable(id="usage-table", cursor_type="row", zebra_stripes=False)
        yield Static("", id="usage-note", classes="note")

    def _columns(self, table: DataTable) -> list[str]:
        """Lay the table out for the terminal's width; narrow terminals drop errors and share."""
        columns = [
            Column("swatch", "", 1), Column("label", self._group_label(), (24, 34)), Column("requests", "Requests", 9),
            Column("errors", "Errors", 7, wide_only=True), Column("in", "In", 7), Column("out", "Out", 7),
            Column("share", "Share", 14, wide_only=True), Column("cost", "Est. cost", 9),
        ]
        return lay_out(table, columns, self.app.size.width)

    def on_resize(self) -> None:
        if self.series is not None:
            self._table(self.series)

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
        if not data.priced:
            cost, note = "no prices", "add \\[prices] to the config"
        else:
            cost = money(totals.cost)
            note = f"+{len(totals.unpriced_models)} unpriced" if totals.unpriced_models else "from \\[prices]"
        self.query_one("#usage-cost", StatTile).show(cost, note=note)
        self._chart(data)
        self._table(data)
        unpriced = ", ".join(totals.unpriced_models)
        source = "from the daemon's memory (per minute)" if data.source == "memory" else "from the hourly rollups"
        self.query_one("#usage-note", Static).update(
            f"{len(data.buckets)} × {_bucket_words(data.bucket_seconds)}, {source}"
            + (f" · no price for: {unpriced}" if unpriced else "")
        )

    def _values(self, line) -> list[int]:
        return line.tokens if self.metric == "tokens" else line.requests

    def _chart(self, data: UsageSeries) -> None:
        chart = self.query_one("#usage-chart", BarChart)
        stacks = {line.label: [float(v) for v in self._values(line)] for line in data.series}
        count = 6 if self.app.size.width >= 120 else 4
        chart.show(stacks, bucket_labels(data, self.noor.tz, count))
        metric = dict(METRICS)[self.metric]
        self.query_one("#usage-chart-box").border_title = f"{metric} per {_bucket_words(data.bucket_seconds)} by {self._group_label().lower()} · {RANGE_WORDS[data.range]}"

    def _table(self, data: UsageSeries) -> None:
        table = self.query_one("#usage-table", DataTable)
        chart = self.query_one("#usage-chart", BarChart)
        grand = sum(sum(self._values(line)) for line in data.series) or 1
        with self.app.batch_update():
            columns = self._columns(table)
            rows = []
            for index, line in enumerate(data.series):
                t = line.totals
                share = sum(self._values(line)) / grand
                colour = Style(color=RichColor.from_rgb(*chart.colour(index)))
                cells = {
                    "swatch": Text("█", style=colour),
                    "label": truncate(line.label, 34),
                    "requests": Text(integer(t.requests), justify="right"),
                    "errors": Text(integer(t.errors), justify="right", style="red" if t.errors else "dim"),
                    "in": Text(si(t.prompt_tokens), justify="right"),
                    "out": Text(si(t.completion_tokens), justify="right"),
                    "share": Text(bar(share, 8), style=colour) + Text(f" {share * 100:3.0f}%"),
                    "cost": Text(money(t.cost), justify="right") if t.cost is not None else Text("unpriced", style="dim", justify="right"),
                }
                rows.append((line.key, cells))
            if not data.series:
                empty = {"label": Text(f"No calls in the {RANGE_WORDS[data.range]}.", style="dim")}
                rows.append(("none", {c: empty.get(c, "") for c in columns}))
            sync_rows(table, columns, rows)

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
