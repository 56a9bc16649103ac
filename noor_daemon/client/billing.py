"""The billing answers: an account's Stripe state and usage estimate, and links to Stripe-hosted pages.

Their own module because Stripe's shapes (subscriptions, grace periods, invoices) are passed
through mostly as dicts; NoorAPI never sees a card, and nothing here holds one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class BillingLink:
    """A Stripe-hosted page (Checkout or the Customer Portal); open `url` in a browser."""

    id: str
    url: str
    expires_at: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccountBilling:
    """One account's billing: Stripe ids and states, this period's usage and its estimate, the last invoices."""

    configured: bool
    account: dict[str, Any]
    """id, email, plan, status."""
    free_plan: str
    paid_plans: dict[str, str]
    """Plan name to its Stripe price id: what Checkout can sell."""
    customer_id: str | None
    subscription: dict[str, Any] | None
    """id, status, plan, current_period_start, current_period_end."""
    grace: dict[str, Any] | None
    """payment_failed_at, grace_until, downgraded_at: while a failed payment is unresolved."""
    period: dict[str, Any]
    """start, end, source (subscription or calendar_month)."""
    usage: dict[str, Any]
    """requests, errors, prompt_tokens, completion_tokens, tokens, models (each with its cost)."""
    estimate: dict[str, Any]
    """amount (at the config's [prices]), priced, unpriced_models, basis."""
    links: dict[str, str]
    """checkout and portal: the paths to POST for a fresh Stripe URL."""
    invoices: list[dict[str, Any]] | None
    """The last invoices from Stripe (None when not configured or Stripe did not answer)."""
    invoices_error: str | None
    meter: dict[str, Any] | None = None
    message: str | None = None

    @property
    def plan(self) -> str:
        return str(self.account.get("plan"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
