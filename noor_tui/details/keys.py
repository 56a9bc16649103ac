"""A key's detail: its fields, its limits against its plan's, then (asked of the daemon) its use and history."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text

from noor_daemon.client import AdminClient, Catalog, KeyInfo
from noor_tui.formatting import ago, cost_text, date_time, integer, money, si, until
from noor_tui.widgets.detail import DetailScreen, Section, listing
from noor_tui.widgets.quota import LIMIT_NAMES, amount_text, state_text, used_text


def key_fields(key: KeyInfo, account_label: str, tz: tzinfo | None, now: datetime) -> Section:
    expires = f"{date_time(key.expires_at, tz)} ({ago(key.expires_at, now)})" if key.expires_at else "never"
    return Section(
        "Key",
        [
            ("Id", key.id),
            ("Prefix", key.masked),
            ("Name", key.name),
            ("Account", account_label),
            ("State", state_text(key.state)),
            ("Models", ", ".join(key.models) if key.models else "every model"),
            ("Created", date_time(key.created_at, tz)),
            ("Last used", f"{date_time(key.last_used_at, tz)} ({ago(key.last_used_at, now)})" if key.last_used_at else "never"),
            ("Expires", expires),
            ("Revoked", date_time(key.revoked_at, tz) if key.revoked_at else None),
        ],
    )


def limits_section(key: KeyInfo, plan: str | None, catalog: Catalog | None, currency: str = "USD") -> Section:
    plan_limits = (catalog.plans.get(plan) if catalog and plan else None) or {}
    own = key.limits or {}
    table = listing("Limit", "This key", f"Plan {plan or ''}".strip())
    for name, label in LIMIT_NAMES.items():
        if name in own or name in plan_limits:
            def shown(value: float | None, budget: bool = name.startswith("budget_")) -> str:
                return money(value, currency) if budget else integer(value)

            table.add_row(label, shown(own.get(name)) if name in own else Text("plan's", style="dim"), shown(plan_limits.get(name)))
    if not table.row_count:
        return Section("Limits", note="No limits: neither the key nor its plan sets any.")
    return Section("Limits", table=table, note="A key's own limits are tighter than its plan's; both apply.")


def key_detail(admin: AdminClient | None, key: KeyInfo, account_label: str, plan: str | None, catalog: Catalog | None,
               tz: tzinfo | None, now: datetime, currency: str = "USD") -> DetailScreen:
    sections = [key_fields(key, account_label, tz, now), limits_section(key, plan, catalog, currency)]

    async def load() -> list[Section]:
        assert admin is not None
        more = []
        report = await admin.account_quota(key.account_id)
        mine = next((kq for kq in report.keys if kq.key.id == key.id), None)
        rows = [*(mine.limits if mine else []), *report.limits]
        if rows:
            table = listing("Scope", "Limit", "Used / limit", "Left", "Resets")
            for row in rows:
                table.add_row(row.scope, LIMIT_NAMES.get(row.limit, row.limit), used_text(row, report.currency),
                              amount_text(row, row.remaining, report.currency), until(row.resets_at, now) if row.resets_at else "–")
            more.append(Section("Use of its limits now", table=table))
        series = await admin.usage_series("30d", "key", account=key.account_id, limit=50)
        line = next((s for s in series.series if s.key == key.id), None)
        if line is None:
            more.append(Section("Usage · last 30 days", note="No calls in the last 30 days."))
        else:
            t = line.totals
            more.append(Section("Usage · last 30 days", [
                ("Requests", integer(t.requests)), ("Errors", integer(t.errors)),
                ("Tokens in / out", f"{si(t.prompt_tokens)} / {si(t.completion_tokens)}"),
                ("Estimated cost", cost_text(t.cost, t.unpriced_models, series.currency)),
            ]))
        history = [e for e in (await admin.audit(account=key.account_id, limit=200)).data if e.target_id == key.id]
        if history:
            table = listing("Time", "Action", "By", "Details")
            for entry in history:
                details = ", ".join(f"{k}={v}" for k, v in (entry.details or {}).items())
                table.add_row(date_time(entry.ts, tz), entry.action, entry.actor, Text(details))
            more.append(Section("History", table=table))
        else:
            more.append(Section("History", note="No audit entries name this key."))
        return more

    return DetailScreen(f"Key {key.masked}", sections, copy=key.id, load=load if admin is not None else None)
