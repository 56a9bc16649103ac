"""An account's detail: plan and status, its keys, then (asked of the daemon) its limits and use, budget,
billing this period and its data-rights requests."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text

from noor_daemon.client import Account, AdminClient, KeyInfo, QuotaReport
from noor_tui.formatting import ago, date, date_time, integer, money, si, until
from noor_tui.widgets.detail import DetailScreen, Section, listing
from noor_tui.widgets.quota import LIMIT_NAMES, amount_text, fraction, level_style, meter, state_text, used_text


def account_fields(account: Account, tz: tzinfo | None) -> Section:
    return Section(
        "Account",
        [("Id", account.id), ("Email", account.email), ("Plan", account.plan), ("Status", state_text(account.status)),
         ("Created", date_time(account.created_at, tz))],
    )


def keys_section(keys: list[KeyInfo], now: datetime) -> Section:
    if not keys:
        return Section("Keys", note="No keys.")
    table = listing("Key", "Name", "State", "Last used")
    for key in keys:
        table.add_row(key.masked, Text(key.name or "–"), state_text(key.state), ago(key.last_used_at, now))
    return Section(f"Keys · {sum(k.state == 'active' for k in keys)} active of {len(keys)}", table=table)


def limits_sections(report: QuotaReport, now: datetime) -> list[Section]:
    """The plan's limits with their use, and its budgets when the daemon reports any."""
    limits = [row for row in report.limits if not row.is_budget]
    budgets = [row for row in report.limits if row.is_budget]
    sections = []
    if limits:
        table = listing("Limit", "Used / limit", "Left", "Resets")
        for row in limits:
            table.add_row(LIMIT_NAMES.get(row.limit, row.limit), f"{si(row.used)} / {si(row.value)}", si(row.remaining),
                          until(row.resets_at, now) if row.resets_at else "–")
        sections.append(Section(f"Limits · plan {report.account.plan}", table=table))
    else:
        sections.append(Section(f"Limits · plan {report.account.plan}", note="The plan sets no limits."))
    if budgets:
        table = listing("Budget", "Use", "Spent / budget", "Left", "Resets")
        for row in budgets:
            share = fraction(row)
            style = level_style(share)
            left = Text(amount_text(row, row.remaining, report.currency), style=style if share >= 0.9 else "")
            table.add_row(LIMIT_NAMES.get(row.limit, row.limit), meter(share, 8, style) + Text(f" {share * 100:3.0f}%", style=style),
                          used_text(row, report.currency), left,
                          until(row.resets_at, now) if row.resets_at else "–")
        sections.append(Section(f"Budget · {report.currency}", table=table))
    else:
        sections.append(Section("Budget", note="No budget: neither the plan nor the account sets one."))
    return sections


def account_detail(admin: AdminClient, account: Account, keys: list[KeyInfo], tz: tzinfo | None, now: datetime) -> DetailScreen:
    sections = [account_fields(account, tz), keys_section(keys, now)]

    async def load() -> list[Section]:
        quota = await admin.account_quota(account.id)
        more = limits_sections(quota, now)
        billing = await admin.account_billing(account.id)
        usage, estimate, period = billing.usage, billing.estimate, billing.period
        rows: list[tuple[str, object]] = [
            ("Period", f"{date(period.get('start'), tz)} → {date(period.get('end'), tz)}"),
            ("Calls", f"{integer(usage.get('requests'))} ({integer(usage.get('errors'))} errors)"),
            ("Tokens in / out", f"{si(usage.get('prompt_tokens'))} / {si(usage.get('completion_tokens'))}"),
            ("Estimate", money(estimate.get("amount"), quota.currency)
             + (f" (+ unpriced: {', '.join(estimate.get('unpriced_models'))})" if estimate.get("unpriced_models") else "")),
        ]
        if billing.configured:
            subscription = billing.subscription or {}
            rows += [("Stripe customer", billing.customer_id),
                     ("Subscription", f"{subscription.get('status')} {subscription.get('plan') or ''}" if subscription else "none")]
        else:
            rows.append(("Billing", "not configured: nobody is charged"))
        more.append(Section("Usage and billing · this period", rows))
        requests = (await admin.privacy_requests(account=account.id, status="all", limit=50)).data
        if requests:
            table = listing("#", "Kind", "Status", "Received", "Due")
            for request in requests:
                table.add_row(str(request.id), request.kind, request.status, date(request.received_at, tz), date(request.due_at, tz))
            more.append(Section("Data-rights requests", table=table))
        else:
            more.append(Section("Data-rights requests", note="None."))
        return more

    return DetailScreen(f"Account {account.email}", sections, copy=account.id, load=load)
