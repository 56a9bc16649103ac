"""Overview: live request rate, tokens per minute, error rate and latency over the last hour, the live feed, upstream
health, and what was spent today and this month.

Spend comes from `/admin/v1/spend` (two requests: this day and this month, by account), every third poll with the
upstreams, rather than from `/admin/v1/overview`: the overview is this daemon's last hour in memory, with no
identity and no query, while spend is read from the ledger's rollups that every daemon shares, names accounts,
and is the same document `noor spend` prints.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Grid, Horizontal, Vertical
from textual.widgets import DataTable

from noor_daemon.client import Overview, Upstreams
from noor_tui.details.calls import call_detail
from noor_tui.details.spend import spend_detail
from noor_tui.formatting import duration_ms, money, percent, rate, si
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.charts import Chart
from noor_tui.widgets.feed import LiveFeed
from noor_tui.widgets.records import RecordTable
from noor_tui.widgets.spend import SpendNow, SpendTable
from noor_tui.widgets.stats import StatTile

CHARTS = (
    ("rpm", "Requests / min"),
    ("tpm", "Tokens / min"),
    ("errors", "Error rate"),
    ("latency", "Latency p50 · p95"),
)

STATE_MARKS = {
    "ok": ("●", "green"),
    "idle": ("○", "dim"),
    "degraded": ("◐", "yellow"),
    "down": ("✗", "bold red"),
}


def state_text(state: str) -> Text:
    mark, style = STATE_MARKS.get(state, ("•", ""))
    return Text(f"{mark} {state}", style=style)


def minute_axis(points: int, step: int) -> tuple[list[float], tuple[list[float], list[str]]]:
    """x positions in minutes before now, and ticks like -60m … now."""
    xs = [-(points - 1 - i) * step / 60 for i in range(points)]
    span = points * step / 60
    every = 15 if span > 30 else 5 if span > 10 else 2
    ticks = [-float(m) for m in range(int(span) - int(span) % every, 0, -every)] + [0.0]
    labels = [f"{int(t)}m" if t else "now" for t in ticks]
    return xs, (ticks, labels)


SLOW_EVERY = 3
"""Upstream health and spend (rollup reads) are asked every third poll; the charts (memory) every poll."""


@dataclass
class OverviewData:
    overview: Overview
    upstreams: Upstreams | None
    spend: SpendNow | None = None


class OverviewScreen(NoorScreen):
    MODE = "overview"
    AUTO_FOCUS = "#feed DataTable"
    POLL_SECONDS = 2.0
    HELP = (
        "Request rate, tokens per minute, error rate and latency (p50 and p95) over the last hour, "
        "from the daemon's memory; the live feed of metered calls (ids and numbers only, never content); "
        "and the health of each upstream over the last hour or two. Spend today (this month below it) from the "
        "ledger, in the daemon's currency, with the accounts that spent most and their budgets (from 140 "
        "columns; $ shows every account, key and model). Each call's cost is in the feed (\"unpriced\" for a "
        "model with no price). Filter the feed with / (status:4xx, account:ada, model:gpt, cost:unpriced); "
        "Enter shows a call in full, and for a refused one what refused it."
    )
    BINDINGS = [
        Binding("dollar_sign", "spend", "Spend", key_display="$"),
        Binding("p", "pause", "Pause feed"),
        Binding("z", "zoom", "1h ⇄ 10m"),
        Binding("c", "next_chart", "Next chart"),
    ]
    PALETTE = [
        ("Overview: show the last hour", "Charts over 60 minutes, one point a minute", "zoom(3600)"),
        ("Overview: show the last 10 minutes", "Charts over 10 minutes, one point every 10 s", "zoom(600)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.window = 3600
        self.current_chart = 0
        self.upstreams: Upstreams | None = None
        self.spend: SpendNow | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="stats"):
            yield StatTile("Requests / min", id="stat-rpm", short="Req/min")
            yield StatTile("Tokens / min", id="stat-tpm", short="Tok/min")
            yield StatTile("Errors", id="stat-errors")
            yield StatTile("Latency", id="stat-latency")
            yield StatTile("Spend today", id="stat-spend", spark=False, short="Spend")
        with Grid(id="charts"):
            for index, (name, title) in enumerate(CHARTS):
                with Container(id=f"box-{name}", classes="chart-box" + (" -current" if index == 0 else "")) as box:
                    box.border_title = title
                    yield Chart(id=f"chart-{name}")
        with Horizontal(id="lower"):
            with Container(id="feed-box", classes="panel") as feed_box:
                feed_box.border_title = "Live calls"
                yield LiveFeed(id="feed", account_label=self.admin_app.account_label)
            with Vertical(id="side"):
                with Container(id="upstream-box", classes="panel") as up_box:
                    up_box.border_title = "Upstreams · last hour"
                    yield DataTable(id="upstreams", cursor_type="none", zebra_stripes=False)
                with Container(id="spend-box", classes="panel") as spend_box:
                    spend_box.border_title = "Spend"
                    yield SpendTable(id="spend")

    def on_mount(self) -> None:
        table = self.query_one("#upstreams", DataTable)
        table.add_column("Upstream", key="name", width=14)
        table.add_column("State", key="state", width=9)
        table.add_column("Calls", key="calls", width=5)
        table.add_column("Err", key="err", width=5)
        table.add_column("Latency", key="latency", width=7)
        self._set_titles()

    def on_resize(self) -> None:
        """The health and spend panels beside the feed from 140 columns; below that, a summary in the feed's title."""
        self.query_one("#side").set_class(self.size.width >= 140, "-shown")
        if self.upstreams is not None:
            self._show_upstreams(self.upstreams)

    # -- data ---------------------------------------------------------------------

    async def fetch(self) -> OverviewData:
        admin = self.admin_app.admin
        step = 60 if self.window > 600 else 10
        if self.polls % SLOW_EVERY and self.upstreams is not None and self.spend is not None:
            return OverviewData(await admin.overview(window=self.window, step=step), None)
        overview, upstreams, day, month = await asyncio.gather(
            admin.overview(window=self.window, step=step), admin.upstreams(),
            admin.spend(period="day", by="account"), admin.spend(period="month", by="account"),
        )
        return OverviewData(overview, upstreams, SpendNow(day, month))

    def show(self, data: OverviewData) -> None:
        ov = data.overview
        minute, series = ov.last_minute, ov.series
        self.query_one("#stat-rpm", StatTile).show(rate(minute.rpm), note=f"{si(ov.window.requests)} in {self._span()}", series=series["rpm"])
        self.query_one("#stat-tpm", StatTile).show(rate(minute.tpm), note=f"{si(ov.window.prompt_tokens + ov.window.completion_tokens)} tok", series=series["tpm"])
        error_rate = minute.error_rate if minute.requests else ov.window.error_rate
        level = "bad" if (error_rate or 0) >= 0.05 else "warn" if (error_rate or 0) >= 0.01 else ""
        self.query_one("#stat-errors", StatTile).show(
            percent(error_rate), note=f"{si(ov.window.errors)} in {self._span()}",
            series=[(v or 0) * 100 for v in series["error_rate"]], level=level,
        )
        p50 = minute.latency_p50_ms if minute.requests else ov.window.latency_p50_ms
        p95 = minute.latency_p95_ms if minute.requests else ov.window.latency_p95_ms
        self.query_one("#stat-latency", StatTile).show(
            f"{duration_ms(p50)} · {duration_ms(p95)}", note="p50 · p95", series=series["latency_p95_ms"]
        )
        xs, ticks = minute_axis(len(series["rpm"]), ov.step_seconds)
        self.query_one("#chart-rpm", Chart).show_lines(xs, {"requests/min": series["rpm"]}, ticks, fmt=rate, empty="no calls yet")
        self.query_one("#chart-tpm", Chart).show_lines(xs, {"tokens/min": series["tpm"]}, ticks, empty="no tokens yet")
        self.query_one("#chart-errors", Chart).show_lines(
            xs, {"error %": [v * 100 if v is not None else None for v in series["error_rate"]]}, ticks,
            fmt=lambda v: f"{v:g}%", empty="no errors" if ov.window.requests else "no calls yet", fill=False,
        )
        self.query_one("#chart-latency", Chart).show_lines(
            xs, {"p50": series["latency_p50_ms"], "p95": series["latency_p95_ms"]}, ticks, fmt=duration_ms,
            empty="no calls yet",
        )
        if data.upstreams is not None:
            self.upstreams = data.upstreams
            self._show_upstreams(data.upstreams)
        if data.spend is not None:
            self.spend = data.spend
            self._show_spend(data.spend)

    def _span(self) -> str:
        return "1h" if self.window >= 3600 else f"{self.window // 60}m"

    def _show_upstreams(self, upstreams: Upstreams) -> None:
        table = self.query_one("#upstreams", DataTable)
        with self.app.batch_update():
            table.clear()
            for provider in upstreams.providers:
                table.add_row(
                    Text(provider.name, style="bold"), state_text(provider.state), si(provider.requests),
                    percent(provider.error_rate), duration_ms(provider.latency_ms), key=f"p:{provider.name}",
                )
                for route in (r for r in upstreams.routes if r.provider == provider.name):
                    breaker = f" [{route.breaker}]" if route.breaker and route.breaker != "closed" else ""
                    table.add_row(
                        Text(f"  {route.model}{breaker}", style="dim" if route.state == "idle" else ""),
                        state_text(route.state), si(route.requests), percent(route.error_rate),
                        duration_ms(route.latency_ms), key=f"r:{route.provider}:{route.model}",
                    )
        bad = [p.name for p in upstreams.providers if p.state in ("degraded", "down")]
        self.query_one("#upstream-box").border_subtitle = ("⚠ " + ", ".join(bad)) if bad else ""
        marks = " ".join(f"{p.name} {STATE_MARKS.get(p.state, ('•', ''))[0]}" for p in upstreams.providers)
        # The health panel shows from 120 columns; below that the feed's title carries a one-line summary.
        summary = f" · upstreams: {marks}" if self.size.width < 140 else ""
        self.query_one("#feed-box").border_title = "Live calls" + (f" · ⚠ upstream {', '.join(bad)}" if bad else summary)

    def _show_spend(self, spend: SpendNow) -> None:
        currency = spend.currency
        self.noor.currency = currency
        fullest = spend.fullest()
        self.query_one("#stat-spend", StatTile).show(
            money(spend.day.total, currency), note=f"month {money(spend.month.total, currency)}",
            level="bad" if fullest >= 0.9 else "warn" if fullest >= 0.7 else "",
        )
        self.query_one("#spend", SpendTable).show(spend)
        box = self.query_one("#spend-box")
        box.border_title = f"Spend · today {money(spend.day.total, currency)} · month {money(spend.month.total, currency)}"
        unpriced = spend.unpriced_calls
        box.border_subtitle = f"⚠ {unpriced:,} unpriced calls · $ all" if unpriced else "$ all"

    @on(RecordTable.Opened, "#feed")
    def _open(self, event: RecordTable.Opened) -> None:
        call = event.record.item
        label = self.admin_app.account_label(call.account_id)
        if call.account_id and label != call.account_id:
            label = f"{label} ({call.account_id})"
        self.app.push_screen(call_detail(self.admin_app.admin, call, label, self.noor.tz, self.now(), self.noor.currency))

    # -- actions --------------------------------------------------------------------

    def action_spend(self) -> None:
        self.app.push_screen(spend_detail(self.admin_app.admin, self.spend))

    def action_pause(self) -> None:
        feed = self.query_one(LiveFeed)
        feed.paused = not feed.paused
        feed.catch_up(force=True)
        self.notify("Live feed paused: calls keep arriving and show when you resume." if feed.paused else "Live feed resumed.")
        self.poll()

    def action_zoom(self, window: int | None = None) -> None:
        self.window = window if window is not None else (600 if self.window == 3600 else 3600)
        self._set_titles()
        self.poll()

    def _set_titles(self) -> None:
        span = "last hour" if self.window == 3600 else "last 10 min"
        for name, title in CHARTS:
            self.query_one(f"#box-{name}").border_title = f"{title} · {span}"

    def action_next_chart(self) -> None:
        boxes = [self.query_one(f"#box-{name}") for name, _ in CHARTS]
        boxes[self.current_chart].remove_class("-current")
        self.current_chart = (self.current_chart + 1) % len(boxes)
        boxes[self.current_chart].add_class("-current")
