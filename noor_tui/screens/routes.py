"""Routes: each model's routes with their provider, circuit breaker, recent latency, errors and time to first
token; reload the config (a bad file is refused with its errors and the old config keeps serving); the doctor."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import Static

from noor_daemon.client import AdminApiError, DoctorReport, RouteStatus, Upstreams
from noor_tui.details.routes import doctor_detail, route_detail
from noor_tui.formatting import duration_ms, percent, si
from noor_tui.screens.base import FAILED, NoorScreen
from noor_tui.widgets.detail import DetailScreen, Section
from noor_tui.widgets.records import Column, Record, RecordTable

BREAKERS = {
    "closed": ("● closed", "green"),
    "half_open": ("◐ half-open", "yellow"),
    "open": ("✗ open", "bold red"),
    None: ("○ unused", "dim"),
}
COLUMNS = [
    Column("model", "Model", 10, grow=1),
    Column("provider", "Provider", 10, grow=1),
    Column("upstream", "Upstream model", 14, grow=2, drop=2),
    Column("breaker", "Breaker", 11),
    Column("calls", "Calls", 5, right=True),
    Column("errors", "Err", 6, right=True),
    Column("latency", "Latency", 7, right=True),
    Column("ttft", "TTFT", 7, right=True),
    Column("recent", "Err now", 7, right=True, drop=1),
]


@dataclass
class RouteData:
    upstreams: Upstreams
    recent: dict[tuple[str, str], dict]
    """The router's moving figures by (provider, upstream model)."""


def breaker_text(state: str | None, failures: int) -> Text:
    label, style = BREAKERS.get(state, (state or "?", ""))
    if state == "closed" and failures:
        label += f" ({failures})"
    return Text(label, style=style)


class RoutesScreen(NoorScreen):
    MODE = "routes"
    AUTO_FOCUS = "#routes DataTable"
    POLL_SECONDS = 2.0
    HELP = (
        "Each model's routes: the provider and upstream model, the circuit breaker (open: calls skip the route "
        "until a probe succeeds), the last hour's calls, errors, latency and time to first token, and the error "
        "rate routing uses now. R reloads the config file (a bad file is refused, its errors shown, and the old "
        "config keeps serving); d shows the doctor: what is configured, where the data lives."
    )
    BINDINGS = [
        Binding("R", "reload_config", "Reload config"),
        Binding("d", "doctor", "Doctor"),
    ]
    PALETTE = [
        ("Routes: reload the config file", "Re-read the daemon's TOML config; a bad file is refused (R)", "reload_config"),
        ("Settings: doctor (config, data dir, keyring, secrets)", "What `noor doctor` prints, from the daemon (d)", "doctor"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: RouteData | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="routes-summary", classes="summary")
        with Container(id="routes-box", classes="panel") as box:
            box.border_title = "Routes"
            yield RecordTable(COLUMNS, id="routes", empty="No routes configured.")

    async def fetch(self) -> RouteData:
        admin = self.admin_app.admin
        upstreams = await admin.upstreams()
        recent = {(r["provider"], r["model"]): r for r in await admin.routes()}
        return RouteData(upstreams, recent)

    def show(self, data: RouteData) -> None:
        self.data = data
        records = []
        for route in data.upstreams.routes:
            recent = data.recent.get((route.provider, route.upstream_model))
            records.append(Record(
                f"{route.provider}:{route.model}",
                {
                    "model": Text(route.model, style="bold"),
                    "provider": route.provider,
                    "upstream": Text(route.upstream_model, style="dim"),
                    "breaker": breaker_text(route.breaker, route.consecutive_failures),
                    "calls": si(route.requests),
                    "errors": Text(percent(route.error_rate), style="red" if (route.error_rate or 0) >= 0.05 else ""),
                    "latency": duration_ms(route.latency_ms),
                    "ttft": duration_ms(route.ttft_ms),
                    "recent": percent(recent.get("error_rate")) if recent and recent.get("requests") else "–",
                },
                item=route,
                sort={"calls": route.requests, "errors": route.error_rate, "latency": route.latency_ms, "ttft": route.ttft_ms,
                      "recent": recent.get("error_rate") if recent else None,
                      "breaker": {"open": 0, "half_open": 1, "closed": 2}.get(route.breaker or "", 3)},
                fields={"state": route.state, "breaker": route.breaker or "unused"},
                copy=f"{route.provider}/{route.upstream_model}",
            ))
        self.query_one("#routes", RecordTable).show(records)
        open_ = [r for r in data.upstreams.routes if r.breaker == "open"]
        parts = [f"[b]{len(data.upstreams.providers)}[/] providers · [b]{len(data.upstreams.routes)}[/] routes"]
        for provider in data.upstreams.providers:
            mark = {"ok": "[$success]●[/]", "degraded": "[$warning]◐[/]", "down": "[$error]✗[/]"}.get(provider.state, "[dim]○[/]")
            parts.append(f"{mark} {provider.name}")
        if open_:
            parts.append(f"[b $error]{len(open_)} breaker{'s' if len(open_) > 1 else ''} open[/]")
        self.query_one("#routes-summary", Static).update(" · ".join(parts))

    @on(RecordTable.Opened, "#routes")
    def _open(self, event: RecordTable.Opened) -> None:
        route: RouteStatus = event.record.item
        recent = self.data.recent.get((route.provider, route.upstream_model)) if self.data else None
        provider = next((p for p in self.data.upstreams.providers if p.name == route.provider), None) if self.data else None
        self.app.push_screen(route_detail(route, recent, provider))

    # -- actions ------------------------------------------------------------------------

    def action_reload_config(self) -> None:
        self._reload()

    @work(group="action", exit_on_error=False)
    async def _reload(self) -> None:
        admin = self.admin_app.admin

        async def reload() -> dict | AdminApiError:
            try:
                return await admin.reload_config()
            except AdminApiError as error:
                if error.status == 400:  # the file is wrong: its errors go in a panel, not a toast
                    return error
                raise

        answer = await self.call(reload(), "reload the config")
        if answer is FAILED:
            return
        if isinstance(answer, AdminApiError):
            await self.app.push_screen_wait(DetailScreen(
                "Config not reloaded", [Section("The daemon refused the file", note=answer.message)], copy=answer.message
            ))
            return
        warnings = answer.get("warnings") or []
        where = answer.get("config") or "the built-in defaults"
        self.notify("\n".join([f"Reloaded from {where}.", *warnings]), title="Config reloaded",
                    severity="warning" if warnings else "information")
        self.poll()

    def action_doctor(self) -> None:
        self._doctor()

    @work(group="action", exit_on_error=False)
    async def _doctor(self) -> None:
        report = await self.call(self.admin_app.admin.doctor(), "read the doctor's report")
        if isinstance(report, DoctorReport):
            await self.app.push_screen_wait(doctor_detail(report, self.noor.url))

