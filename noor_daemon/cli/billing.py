"""`noor billing …`: Stripe Checkout and Customer Portal links, and an account's billing state.

Stripe's pages collect the card; this daemon only ever sees Stripe ids. The URLs go to stdout
alone (so `xdg-open "$(noor billing checkout …)"` works), the advice to stderr.
"""

from __future__ import annotations

from typing import Any

import click

from noor_daemon.cli.common import connection_options, json_option, print_json, print_table, run_admin, short_time
from noor_daemon.client import AccountBilling
from noor_daemon.domain.money import format_amount


@click.group()
def billing() -> None:
    """Stripe billing: checkout and portal links, an account's plan, usage and invoices."""


@billing.command("checkout")
@click.argument("email")
@click.option("--plan", required=True, help="The paid plan to subscribe to (one of [billing.prices]).")
@json_option
@connection_options
def checkout(email: str, plan: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Print a Stripe Checkout URL subscribing the account EMAIL to PLAN."""
    link = run_admin(url, data_dir, lambda admin: admin.billing_checkout(email, plan))
    if as_json:
        print_json(link.to_json())
        return
    click.echo(f"Stripe Checkout for {email}, plan {plan} (open it in a browser; it expires in 24 hours):", err=True)
    click.echo(link.url)
    click.echo("The plan changes when Stripe confirms the payment (its webhook reaches /stripe/webhook).", err=True)


@billing.command("portal")
@click.argument("email")
@json_option
@connection_options
def portal(email: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Print a Stripe Customer Portal URL for the account EMAIL (change plan, card, cancel, invoices)."""
    link = run_admin(url, data_dir, lambda admin: admin.billing_portal(email))
    if as_json:
        print_json(link.to_json())
        return
    click.echo(f"Stripe Customer Portal for {email} (open it in a browser):", err=True)
    click.echo(link.url)


@billing.command("status")
@click.argument("email", required=False)
@json_option
@connection_options
def status(email: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Billing of the account EMAIL: plan, subscription, period usage and estimate, meter, invoices.

    Without EMAIL: the daemon's billing state (customers, subscriptions, meter outbox, webhooks).
    """
    if email is None:
        summary = run_admin(url, data_dir, lambda admin: admin.billing_status())
        if as_json:
            print_json(summary)
        else:
            _print_summary(summary)
        return
    state = run_admin(url, data_dir, lambda admin: admin.account_billing(email))
    if as_json:
        print_json(state.to_json())
    else:
        _print_account(state)


def _line(label: str, text: str) -> None:
    click.echo(f"{label:<11}{text}")


def _print_summary(summary: dict[str, Any]) -> None:
    if not summary.get("configured"):
        click.echo("Billing is not configured: add a [billing] section to the config (see the README). Nobody is charged.")
        return
    meter = summary["meter"]
    _line("Stripe", summary["api_base"])
    _line("Plans", ", ".join(f"{plan} ({price})" for plan, price in summary["paid_plans"].items()) or "none")
    _line("Free plan", summary["free_plan"])
    _line("Customers", f"{summary['customers']} ({summary['accounts_without_customer']} accounts still to create)")
    _line("Subscribed", f"{summary['subscriptions']}, {summary['in_grace']} in a grace period")
    _line("Meter", _meter_text(meter, summary["meter_event_name"]))
    _line("Deletions", f"{summary['deletions_pending']} Stripe customers still to delete")
    webhooks = summary["webhooks"]
    _line("Webhooks", f"{webhooks['processed']} events, last {short_time(webhooks['last_received_at']) or 'never'}")


def _meter_text(meter: dict[str, Any], event_name: str | None = None) -> str:
    text = f"{meter['sent']} sent ({meter['reported']} {meter['value']}), {meter['pending']} pending, {meter['failed']} failed"
    if event_name:
        text = f"{event_name}: {text}"
    if meter.get("last_error"):
        text += f"; last error {meter['last_error']}, next try {short_time(meter.get('next_attempt_at'))}"
    return text


def _print_account(state: AccountBilling) -> None:
    account = state.account
    _line("Account", f"{account['email']} ({account['id']})")
    if not state.configured:
        _line("Plan", f"{account['plan']}")
        click.echo("Billing is not configured on this daemon: nobody is charged.")
    else:
        sub = state.subscription
        plan = f"{account['plan']}"
        if sub:
            plan += f"  (subscription {sub['id']} {sub['status']}"
            plan += f", period ends {short_time(sub['current_period_end'])})" if sub.get("current_period_end") else ")"
        else:
            plan += f"  (no subscription; `noor billing checkout {account['email']} --plan PLAN`)"
        _line("Plan", plan)
        _line("Customer", state.customer_id or "not created yet")
        if state.grace:
            grace = state.grace
            text = f"payment failed {short_time(grace['payment_failed_at'])}; "
            text += (
                f"moved to {state.free_plan} {short_time(grace['downgraded_at'])}"
                if grace.get("downgraded_at")
                else f"moves to {state.free_plan} {short_time(grace['grace_until'])} unless paid"
            )
            _line("Grace", text)
    usage, estimate, period = state.usage, state.estimate, state.period
    _line("Period", f"{short_time(period['start'])} to {short_time(period['end'])} ({period['source'].replace('_', ' ')})")
    _line("Usage", f"{usage['requests']:,} requests, {usage['tokens']:,} tokens")
    amount = f"{estimate['amount']:.2f} at the config's [prices]" if estimate["priced"] else "no [prices] in the config"
    if estimate["unpriced_models"]:
        amount += f" (unpriced: {', '.join(estimate['unpriced_models'])})"
    _line("Estimate", amount)
    if not state.configured:
        return
    if state.meter:
        _line("Meter", _meter_text(state.meter))
    if state.invoices_error:
        _line("Invoices", f"Stripe did not answer ({state.invoices_error})")
    elif state.invoices:
        click.echo("Invoices")
        rows = [
            (i.get("number") or i.get("id"), i.get("status"), _money(i.get("amount_paid") or i.get("total"), i.get("currency")),
             short_time(_iso(i.get("created"))), i.get("hosted_invoice_url"))
            for i in state.invoices
        ]
        print_table(("  NUMBER", "STATUS", "AMOUNT", "DATE", "URL"), [("  " + str(r[0]), *r[1:]) for r in rows])
    else:
        _line("Invoices", "none yet")
    _line("Checkout", f"noor billing checkout {account['email']} --plan {' | '.join(state.paid_plans) or 'PLAN'}")
    _line("Portal", f"noor billing portal {account['email']}")


def _money(minor: int | None, currency: str | None) -> str:
    if minor is None or not currency:
        return "-"
    return f"{format_amount(int(minor), currency)} {currency.upper()}"


def _iso(seconds: int | None) -> str | None:
    if not seconds:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
