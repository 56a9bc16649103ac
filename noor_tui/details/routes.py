"""A route in full, and the daemon's doctor report (what `noor doctor` prints) as a panel."""

from __future__ import annotations

from noor_daemon.client import DoctorReport, ProviderHealth, RouteStatus
from noor_tui.formatting import duration_ms, integer, percent
from noor_tui.widgets.detail import DetailScreen, Section

LIMITS_STATES = {
    "local": "counted in this daemon",
    "shared": "shared with the other daemons through Redis",
    "fallback": "LOCAL FALLBACK: Redis is unreachable; this daemon enforces its limits alone until it is back",
}


def route_detail(route: RouteStatus, recent: dict | None, provider: ProviderHealth | None) -> DetailScreen:
    rows = [
        ("Model", route.model), ("Provider", route.provider), ("Upstream model", route.upstream_model),
        ("Breaker", route.breaker or "not yet used"), ("Failures in a row", str(route.consecutive_failures)),
        ("State", route.state),
    ]
    hour = [
        ("Calls", integer(route.requests)), ("Errors", f"{integer(route.errors)} ({percent(route.error_rate)})"),
        ("Mean latency", duration_ms(route.latency_ms)), ("Mean time to first token", duration_ms(route.ttft_ms)),
    ]
    sections = [Section("Route", rows), Section("Last hour or two (from the route rollups)", hour)]
    if recent is not None:
        sections.append(Section("Moving figures (what routing uses now)", [
            ("Time to first token", duration_ms(recent.get("ttft_ms"))),
            ("Error rate", percent(recent.get("error_rate"))),
            ("Attempts since start", integer(recent.get("requests"))), ("Failed attempts", integer(recent.get("failures"))),
        ]))
    if provider is not None:
        sections.append(Section("Provider", [("Name", provider.name), ("Kind", provider.kind), ("Host", provider.host),
                                             ("Routes", str(provider.routes)), ("State", provider.state)]))
    return DetailScreen(f"Route {route.provider}/{route.upstream_model}", sections, copy=f"{route.provider}/{route.upstream_model}")


def doctor_detail(report: DoctorReport, url: str) -> DetailScreen:
    config = report.config
    if config.get("path"):
        config_text = f"{config['path']} (valid: it is the one serving; {config.get('providers')} providers, {config.get('models')} models)"
    else:
        config_text = "no file: the built-in simulator"
    ledger = report.ledger
    keyring = report.keyring
    secrets = report.secrets
    rows = [
        ("version", report.version),
        ("config file", config_text),
        ("data dir", report.data_dir),
        ("ledger", f"{ledger.get('engine')} {ledger.get('where')}" + ("" if ledger.get("healthy") else " (UNWRITABLE)")),
        ("keyring", f"{keyring.get('backend')} ({'usable' if keyring.get('usable') else 'NO OS keyring backend'})"),
        ("secrets", f"{secrets.get('where')}" + ("" if secrets.get("usable") else " (NOT usable here)")),
        ("admin token", report.admin_token.get("source")),
        ("daemon", f"{url}: answering (version {report.version})"),
        ("limits", LIMITS_STATES.get(report.limits, report.limits)),
    ]
    more = [
        ("TLS", "on" if report.server.get("tls") else "off (loopback)"),
        ("remote admin", "allowed (over TLS)" if report.server.get("admin_remote") else "loopback only"),
        ("billing", "Stripe configured" if report.billing.get("configured") else "not configured: nobody is charged"),
        ("mail", f"{report.mail.get('delivery')}: {report.mail.get('where')}"),
        ("retention", f"usage kept {report.retention.get('usage_days')} days"),
    ]
    return DetailScreen(
        "Doctor · noor doctor, as the daemon sees it",
        [Section("What is configured and where the data lives", rows), Section("Settings", more)],
        copy=report.data_dir,
    )
