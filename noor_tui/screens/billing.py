"""Billing: each account's plan, this period's usage and estimated charge; Stripe links once billing is configured."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import DataTable, Static

from noor_daemon.client import Account, AccountBilling, Catalog, UsageSeries
from noor_tui.formatting import integer, money, si, truncate
from noor_tui.screens.base import NoorScreen
from noor_tui.widgets.cells import Column, lay_out, width_of

NOT_CONFIGURED = (
    "[b $warning]Billing is not configured.[/] This daemon has no Stripe settings: nobody is charged and no card is "
    "ever seen here. Below, each account's last 30 days at the config's \\[prices], as an estimate."
)


COLUMNS = [
    Column("email", "Account", (24, 30)), Column("plan", "Plan", (8, 10)), Column("requests", "Requests", 9),
    Column("tokens", "Tokens", 8), Column("cost", "Est. charge", (11, 12)), Column("stripe", "Stripe", 14, wide_only=True),
]


@dataclass
class BillingData:
    catalog: Catalog
    accounts: list[Account]
    usage: UsageSeries
    stripe: dict[str, AccountBilling] | None = None
    """Per account id, from /admin/v1/billing/accounts/{id} once billing is configured."""


class BillingScreen(NoorScreen):
    MODE = "billing"
    AUTO_FOCUS = "#billing"
    POLL_SECONDS = 30.0
    WATCHES = ("accounts",)
    HELP = (
        "Each account's plan, its usage over the last 30 days and the estimated charge at the configured prices. "
        "Billing through Stripe is shown here once it is configured; until then the screen says so."
    )
    BINDINGS = [Binding("l", "stripe_link", "Stripe link", show=False)]
    PALETTE = [("Billing: Stripe link", "A Checkout or Customer Portal link for the highlighted account (l)", "stripe_link")]

    def compose_body(self) -> ComposeResult:
        yield Static(NOT_CONFIGURED, id="billing-state", classes="notice")
        with Container(id="billing-box", classes="panel") as box:
            box.border_title = "Accounts · last 30 days"
            yield DataTable(id="billing", cursor_type="row", zebra_stripes=True)
        with Container(id="prices-box", classes="panel") as prices:
            prices.border_title = "Prices per million tokens"
            yield DataTable(id="prices", cursor_type="none", zebra_stripes=False)

    def on_mount(self) -> None:
        prices = self.query_one("#prices", DataTable)
        for key, label, width in (("model", "Model", 22), ("input", "Input", 9), ("output", "Output", 9)):
            prices.add_column(label, key=key, width=width)
        self.data: BillingData | None = None

    def on_resize(self) -> None:
        if self.data is not None:
            self.show(self.data)

    async def fetch(self) -> BillingData:
        admin = self.admin_app.admin
        data = BillingData(
            catalog=await admin.catalog(),
            accounts=await admin.list_accounts(),
            usage=await admin.usage_series("30d", "account", limit=50),
        )
        if data.catalog.billing_configured:
            states = await asyncio.gather(*(admin.account_billing(a.id) for a in data.accounts[:50]))
            data.stripe = {state.account["id"]: state for state in states}
        return data

    def show(self, data: BillingData) -> None:
        self.data = data
        self.admin_app.catalog = data.catalog
        self.admin_app.directory_loaded(data.accounts)
        configured = data.catalog.billing_configured
        state = self.query_one("#billing-state", Static)
        state.set_class(not configured, "-unconfigured")
        if configured:
            state.update(
                "[b]Billing is configured.[/] Subscriptions and invoices are managed in Stripe; "
                "[b]l[/] gives a Checkout or Customer Portal link for the highlighted account."
            )
        usage = {line.key: line for line in data.usage.series}
        table = self.query_one("#billing", DataTable)
        with self.app.batch_update():
            columns = lay_out(table, COLUMNS, self.app.size.width)
            table.clear()
            for account in sorted(data.accounts, key=lambda a: a.email.lower()):
                line = usage.get(account.id)
                t = line.totals if line else None
                cost = money(t.cost) if t and t.cost is not None else ("unpriced" if t and t.unpriced_models else money(0.0))
                cells = {
                    "email": truncate(account.email, width_of(table, "email")), "plan": account.plan,
                    "requests": Text(integer(t.requests if t else 0), justify="right"),
                    "tokens": Text(si((t.prompt_tokens + t.completion_tokens) if t else 0), justify="right"),
                    "cost": Text(cost, justify="right"),
                    "stripe": _stripe_cell(data.stripe.get(account.id)) if configured and data.stripe else Text(
                        "not configured" if not configured else "–", style="dim"
                    ),
                }
                table.add_row(*(cells[c] for c in columns), key=account.id)
            prices = self.query_one("#prices", DataTable)
            prices.clear()
            for model, price in data.catalog.prices.items():
                prices.add_row(model, money(price.get("input_per_million")), money(price.get("output_per_million")), key=model)
            if not data.catalog.prices:
                prices.add_row(Text("No [prices] in the config", style="dim"), "", "", key="none")  # Text: no markup
        total = data.usage.totals
        self.query_one("#billing-box").border_subtitle = (
            f"total {money(total.cost)}" + (f" · unpriced: {', '.join(total.unpriced_models)}" if total.unpriced_models else "")
        )

    def action_stripe_link(self) -> None:
        table = self.query_one("#billing", DataTable)
        if self.data is None or not self.data.stripe or table.row_count == 0:
            self.notify("Billing is not configured, or there is no account.", severity="warning")
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        state = self.data.stripe.get(str(row_key.value))
        if state is not None:
            self._stripe_link(state)

    @work(group="action", exit_on_error=False)
    async def _stripe_link(self, state: AccountBilling) -> None:
        admin, email = self.admin_app.admin, state.account["email"]
        if state.subscription and state.subscription.get("status") in ("active", "trialing", "past_due"):
            link, what = await self.call(admin.billing_portal(state.account["id"]), "open the portal"), "Customer Portal"
        else:
            plan = next((p for p in state.paid_plans if p != state.plan), None)
            if plan is None:
                self.notify("No paid plan in [billing.prices].", severity="warning")
                return
            link, what = await self.call(admin.billing_checkout(state.account["id"], plan), "create a Checkout"), f"Checkout ({plan})"
        if link:
            self.app.copy_to_clipboard(link.url)
            self.notify(link.url, title=f"Stripe {what} for {email} (copied)", timeout=30)


def _stripe_cell(state: AccountBilling | None) -> Text:
    """The Stripe column: the subscription's state, a grace period, or why there is none."""
    if state is None:
        return Text("–", style="dim")
    if state.grace and not state.grace.get("downgraded_at"):
        return Text("payment failed", style="bold")
    sub = state.subscription
    if sub and sub.get("status"):
        return Text(f"{sub['status']} {sub.get('plan') or ''}".strip())
    return Text("no subscription" if state.customer_id else "creating…", style="dim")
