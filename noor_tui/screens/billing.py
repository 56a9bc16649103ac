"""Billing: each account's plan, subscription, this period's usage and estimated charge, invoices, Stripe links.

Without a `[billing]` section the daemon charges nobody; the screen says so plainly and still
shows what each account used this period and what it would cost at the config's prices.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.widgets import DataTable, Static

from noor_daemon.client import Account, AccountBilling, BillingLink
from noor_tui.details.billing import billing_detail
from noor_tui.formatting import date, integer, money, si, until
from noor_tui.screens.base import FAILED, NoorScreen
from noor_tui.widgets.modals import ChoiceModal, LinkModal
from noor_tui.widgets.records import Column, Record, RecordTable

MAX_ACCOUNTS = 100

NOT_CONFIGURED = (
    "[b $warning]Billing is not configured.[/] This daemon has no \\[billing] section: nobody is charged and no card "
    "is ever seen here. Below, what each account used this period and what it would cost at the config's \\[prices]."
)

COLUMNS = [
    Column("email", "Account", 14, grow=1),
    Column("plan", "Plan", 6),
    Column("subscription", "Subscription", 15, drop=1),
    Column("tokens", "Tokens", 6, right=True),
    Column("estimate", "Estimate", 9, right=True),
]
LINK_ACTIONS = ("stripe_link", "checkout", "portal")
"""Actions that need Stripe: not offered (footer, palette) while billing is not configured."""


@dataclass
class BillingData:
    summary: dict
    accounts: list[Account]
    documents: dict[str, AccountBilling]


def _subscription(document: AccountBilling) -> Text:
    """The subscription column: its state and plan, a grace period, or why there is none."""
    if not document.configured:
        return Text("–", style="dim")
    if document.grace and not document.grace.get("downgraded_at"):
        return Text("⚠ payment failed", style="bold yellow")
    subscription = document.subscription
    if subscription and subscription.get("status"):
        status = str(subscription["status"])
        style = {"active": "green", "trialing": "green", "past_due": "yellow", "canceled": "dim"}.get(status, "")
        return Text(f"{status} {subscription.get('plan') or ''}".strip(), style=style)
    return Text("no subscription" if document.customer_id else "creating…", style="dim")


class BillingScreen(NoorScreen):
    MODE = "billing"
    AUTO_FOCUS = "#billing DataTable"
    POLL_SECONDS = 30.0
    WATCHES = ("accounts",)
    HELP = (
        "Each account's plan and subscription, its usage this billing period and the estimated charge at the config's "
        "prices, its last invoices, and links to Stripe Checkout (subscribe to a paid plan) and the Customer Portal. "
        "Cards are entered on Stripe's pages, never here. Without [billing] in the config the screen says so."
    )
    BINDINGS = [
        Binding("l", "stripe_link", "Stripe link"),
        Binding("c", "checkout", "Checkout…"),
        Binding("o", "portal", "Portal"),
    ]
    PALETTE = [("Billing: Stripe link", "A Checkout or Customer Portal link for the highlighted account (l)", "stripe_link")]

    def __init__(self) -> None:
        super().__init__()
        self.data: BillingData | None = None
        self.selected: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="billing-state", classes="notice")
        with Horizontal(id="billing-body"):
            with Container(id="billing-box", classes="panel") as box:
                box.border_title = "Accounts · this period"
                yield RecordTable(COLUMNS, id="billing", empty="No accounts.")
            with Vertical(id="billing-detail-box", classes="panel") as detail:
                detail.border_title = "Account"
                yield Static("", id="billing-detail", classes="summary")
                yield DataTable(id="billing-models", cursor_type="none", zebra_stripes=False)
                yield DataTable(id="billing-invoices", cursor_type="none", zebra_stripes=False)

    def on_mount(self) -> None:
        models = self.query_one("#billing-models", DataTable)
        for key, label, width in (("model", "Model", 18), ("requests", "Requests", 9), ("tokens", "Tokens", 8), ("cost", "Cost", 9)):
            models.add_column(label, key=key, width=width)
        invoices = self.query_one("#billing-invoices", DataTable)
        for key, label, width in (("number", "Invoice", 14), ("date", "Date", 10), ("status", "Status", 8), ("total", "Total", 10)):
            invoices.add_column(label, key=key, width=width)

    @property
    def configured(self) -> bool:
        return bool(self.data and self.data.summary.get("configured"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stripe links only where they can work: hidden until the daemon says billing is configured."""
        if action in LINK_ACTIONS and not self.configured:
            return False
        return True

    async def fetch(self) -> BillingData:
        admin = self.admin_app.admin
        summary = await admin.billing_status()
        accounts = await admin.list_accounts()
        gate = asyncio.Semaphore(8)

        async def one(account: Account) -> tuple[str, AccountBilling]:
            async with gate:
                return account.id, await admin.account_billing(account.id)

        documents = dict(await asyncio.gather(*(one(a) for a in accounts[:MAX_ACCOUNTS])))
        return BillingData(summary, accounts, documents)

    def show(self, data: BillingData) -> None:
        self.data = data
        self.admin_app.directory_loaded(data.accounts)
        configured = bool(data.summary.get("configured"))
        state = self.query_one("#billing-state", Static)
        state.set_class(not configured, "-unconfigured")
        if configured:
            s = data.summary
            meter = s.get("meter") or {}
            pending = meter.get("pending") if isinstance(meter, dict) else None
            state.update(
                f"[b $success]Billing is configured[/] (Stripe). {integer(s.get('customers'))} customers · "
                f"{integer(s.get('subscriptions'))} subscriptions · {integer(s.get('in_grace'))} in grace"
                + (f" · meter: {integer(pending)} hours pending" if pending is not None else "")
                + f" · meter event [b]{s.get('meter_event_name')}[/]"
            )
        else:
            state.update(NOT_CONFIGURED)
        records = []
        for account in sorted(data.accounts, key=lambda a: a.email.lower()):
            document = data.documents.get(account.id)
            if document is None:
                continue
            usage, estimate = document.usage, document.estimate
            amount = estimate.get("amount")
            unpriced = estimate.get("unpriced_models") or []
            records.append(Record(
                account.id,
                {"email": account.email, "plan": document.plan, "subscription": _subscription(document),
                 "tokens": si(usage.get("tokens", 0)), "estimate": money(amount) + ("*" if unpriced else "")},
                item=document, sort={"tokens": usage.get("tokens", 0), "estimate": amount}, copy=account.id,
            ))
        self.query_one("#billing", RecordTable).show(records)
        self.refresh_bindings()
        if self.selected not in data.documents and data.documents:
            self.selected = sorted(data.accounts, key=lambda a: a.email.lower())[0].id
        self._detail()

    def _detail(self) -> None:
        if self.data is None or self.selected not in self.data.documents:
            return
        document = self.data.documents[self.selected]
        now = self.now()
        period = document.period
        usage, estimate = document.usage, document.estimate
        lines = [
            f"[b]{document.account.get('email')}[/] · plan [b]{document.plan}[/]"
            + (" · [b $warning]suspended[/]" if document.account.get("status") == "suspended" else ""),
            f"Period {date(period.get('start'), self.noor.tz)} → {date(period.get('end'), self.noor.tz)}"
            f" ({'subscription' if period.get('source') == 'subscription' else 'calendar month'}; ends in {until(period.get('end'), now)})",
            f"Used {integer(usage.get('requests'))} calls, {si(usage.get('tokens'))} tokens"
            f" · estimate [b]{money(estimate.get('amount'))}[/]"
            + (f" (+ unpriced: {', '.join(estimate.get('unpriced_models'))})" if estimate.get("unpriced_models") else ""),
        ]
        if document.configured:
            subscription = document.subscription
            if subscription:
                lines.append(
                    f"Subscription {subscription.get('status')} on {subscription.get('plan')}"
                    f" until {date(subscription.get('current_period_end'), self.noor.tz)}"
                )
            else:
                lines.append("No subscription: press [b]c[/] for a Checkout link to a paid plan.")
            if document.grace and not document.grace.get("downgraded_at"):
                lines.append(f"[b $warning]Payment failed[/]: back to {document.free_plan} in {until(document.grace.get('grace_until'), now)} unless paid.")
            if document.invoices_error:
                lines.append(f"[dim]Invoices unavailable: {document.invoices_error}[/]")
        else:
            lines.append("[dim]Not charged: billing is not configured on this daemon.[/]")
        self.query_one("#billing-detail", Static).update("\n".join(lines))
        self.query_one("#billing-detail-box").border_title = f"Account · {document.account.get('email')}"
        models = self.query_one("#billing-models", DataTable)
        invoices = self.query_one("#billing-invoices", DataTable)
        with self.app.batch_update():
            models.clear()
            for m in usage.get("models", []):
                cost = m.get("cost")
                models.add_row(
                    m.get("model"), Text(integer(m.get("requests")), justify="right"),
                    Text(si((m.get("prompt_tokens") or 0) + (m.get("completion_tokens") or 0)), justify="right"),
                    Text(money(cost) if cost is not None else "unpriced", justify="right", style="" if cost is not None else "dim"),
                    key=str(m.get("model")),
                )
            invoices.clear()
            for invoice in document.invoices or []:
                created = invoice.get("created")
                when = datetime.fromtimestamp(created, UTC).isoformat() if isinstance(created, int) else None
                total = invoice.get("total")
                currency = str(invoice.get("currency") or "").upper()
                invoices.add_row(
                    str(invoice.get("number") or invoice.get("id")), date(when, self.noor.tz), str(invoice.get("status")),
                    Text(f"{total / 100:,.2f} {currency}" if isinstance(total, int) else "–", justify="right"),
                    key=str(invoice.get("id")),
                )
        invoices.display = bool(document.invoices)

    @on(RecordTable.Highlighted, "#billing")
    def _highlighted(self, event: RecordTable.Highlighted) -> None:
        if event.record is not None and event.record.key != self.selected:
            self.selected = event.record.key
            self._detail()

    @on(RecordTable.Opened, "#billing")
    def _open(self, event: RecordTable.Opened) -> None:
        self.app.push_screen(billing_detail(event.record.item, self.noor.tz, self.now()))

    def _document(self) -> AccountBilling | None:
        if self.data is None or self.selected is None:
            return None
        return self.data.documents.get(self.selected)

    def action_stripe_link(self) -> None:
        """Checkout for an account without a subscription, the Customer Portal for one with: the URL is copied."""
        document = self._document()
        if document is None or not document.configured:
            self.notify("Billing is not configured, or there is no account.", severity="warning")
            return
        self._stripe_link(document)

    @work(group="action", exit_on_error=False)
    async def _stripe_link(self, document: AccountBilling) -> None:
        admin, email, account_id = self.admin_app.admin, document.account["email"], str(document.account["id"])
        if document.subscription and document.subscription.get("status") in ("active", "trialing", "past_due"):
            link, what = await self.call(admin.billing_portal(account_id), "open the portal"), "Customer Portal"
        else:
            plan = next((p for p in sorted(document.paid_plans) if p != document.plan), None)
            if plan is None:
                self.notify("No paid plan in [billing.prices].", severity="warning")
                return
            link, what = await self.call(admin.billing_checkout(account_id, plan), "create a Checkout"), f"Checkout ({plan})"
        if isinstance(link, BillingLink):
            self.app.copy_to_clipboard(link.url)
            self.notify(link.url, title=f"Stripe {what} for {email} (copied)", timeout=30)

    def action_checkout(self) -> None:
        document = self._document()
        if document is not None:
            self._checkout(document)

    @work(group="action", exit_on_error=False)
    async def _checkout(self, document: AccountBilling) -> None:
        if not document.configured:
            self.notify("Billing is not configured on this daemon: add a [billing] section to its config.", severity="warning")
            return
        plans = sorted(document.paid_plans)
        if not plans:
            self.notify("No paid plans: add [billing.prices] to the config.", severity="warning")
            return
        plan = await self.app.push_screen_wait(
            ChoiceModal("Checkout link", f"Paid plan for {document.account.get('email')}", [(p, p) for p in plans], confirm="Create link")
        )
        if plan is None:
            return
        link = await self.call(self.admin_app.admin.billing_checkout(str(document.account.get("id")), plan), "create a Checkout link")
        if isinstance(link, BillingLink):
            await self.app.push_screen_wait(LinkModal("Stripe Checkout", link.url, "Send this page to the customer: Stripe collects the card."))

    def action_portal(self) -> None:
        document = self._document()
        if document is not None:
            self._portal(document)

    @work(group="action", exit_on_error=False)
    async def _portal(self, document: AccountBilling) -> None:
        if not document.configured:
            self.notify("Billing is not configured on this daemon: add a [billing] section to its config.", severity="warning")
            return
        link = await self.call(self.admin_app.admin.billing_portal(str(document.account.get("id"))), "open the Customer Portal")
        if link is not FAILED and isinstance(link, BillingLink):
            await self.app.push_screen_wait(LinkModal("Stripe Customer Portal", link.url, "Invoices, cards and cancellation, on Stripe's page."))
