"""An account's billing document in full: plan, period, usage by model with its cost, subscription, invoices."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from noor_daemon.client import AccountBilling
from noor_tui.formatting import date, integer, money, si, until
from noor_tui.widgets.detail import DetailScreen, Section, listing


def billing_detail(document: AccountBilling, tz: tzinfo | None, now: datetime) -> DetailScreen:
    account, period, usage, estimate = document.account, document.period, document.usage, document.estimate
    rows = [
        ("Account", f"{account.get('email')} ({account.get('id')})"), ("Plan", document.plan),
        ("Period", (
            f"{date(period.get('start'), tz)} → {date(period.get('end'), tz)} (ends in {until(period.get('end'), now)}; "
            f"{'subscription' if period.get('source') == 'subscription' else 'calendar month'})"
        )),
        ("Calls", f"{integer(usage.get('requests'))} ({integer(usage.get('errors'))} errors)"),
        ("Tokens in / out", f"{si(usage.get('prompt_tokens'))} / {si(usage.get('completion_tokens'))}"),
        ("Estimate", money(estimate.get("amount"))),
        ("Unpriced models", ", ".join(estimate.get("unpriced_models") or []) or None),
    ]
    sections = [Section("This period", rows)]
    models = usage.get("models") or []
    if models:
        table = listing("Model", "Requests", "Tokens", "Cost")
        for m in models:
            cost = m.get("cost")
            table.add_row(str(m.get("model")), integer(m.get("requests")),
                          si((m.get("prompt_tokens") or 0) + (m.get("completion_tokens") or 0)),
                          money(cost) if cost is not None else "unpriced")
        sections.append(Section("By model", table=table))
    if document.configured:
        subscription = document.subscription or {}
        stripe = [("Customer", document.customer_id),
                  ("Subscription", f"{subscription.get('status')} on {subscription.get('plan')} until "
                                   f"{date(subscription.get('current_period_end'), tz)}" if subscription else "none"),
                  ("Paid plans", ", ".join(sorted(document.paid_plans)) or None)]
        if document.grace and not document.grace.get("downgraded_at"):
            stripe.append(("Payment failed", f"back to {document.free_plan} in {until(document.grace.get('grace_until'), now)} unless paid"))
        sections.append(Section("Stripe", stripe))
        if document.invoices:
            table = listing("Invoice", "Date", "Status", "Total")
            for invoice in document.invoices:
                created = invoice.get("created")
                when = datetime.fromtimestamp(created, UTC).isoformat() if isinstance(created, int) else None
                total = invoice.get("total")
                table.add_row(str(invoice.get("number") or invoice.get("id")), date(when, tz), str(invoice.get("status")),
                              f"{total / 100:,.2f} {str(invoice.get('currency') or '').upper()}" if isinstance(total, int) else "–")
            sections.append(Section("Invoices", table=table))
    else:
        sections.append(Section("Stripe", note="Billing is not configured on this daemon: nobody is charged."))
    return DetailScreen(f"Billing · {account.get('email')}", sections, copy=str(account.get("id")))
