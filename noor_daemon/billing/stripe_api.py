"""The one place NoorAPI talks to Stripe: the official SDK's `StripeClient`, async methods only.

Every call goes through `stripe.StripeClient` on an `AIOHTTPClient` whose session this module
owns (one connection pool, closed with the daemon). `api_base` points the SDK somewhere else
(stripe-mock, the tests' stand-in). The SDK's own retries are off: the outboxes retry with
their own backoff, and an admin call answers at once rather than sleeping.

What reaches Stripe is an email address, NoorAPI's account id (as metadata) and usage totals.
What comes back and is kept: Stripe ids. An error is described by its class, HTTP status and
Stripe code only, never by its message (which can quote what was sent).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import stripe

from noor_daemon.config import BillingConfig

log = logging.getLogger(__name__)
# The SDK logs response bodies (customer emails) at DEBUG: never let them out, whatever level the daemon logs at.
logging.getLogger("stripe").setLevel(logging.WARNING)

TIMEOUT_S = 30.0


class StripeUnavailable(Exception):
    """A Stripe call failed; `retryable` says whether trying again later can help."""

    def __init__(self, reason: str, *, retryable: bool, status: int | None = None, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.code = code

    @property
    def missing(self) -> bool:
        """Stripe says the object does not exist (already deleted, or never was)."""
        return self.status == 404 or self.code == "resource_missing"


def describe(exc: stripe.StripeError) -> StripeUnavailable:
    """An SDK error as a short, content-free reason and whether to retry."""
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "code", None)
    retryable = isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.AuthenticationError)) or (
        status is not None and (status >= 500 or status in (408, 409, 429))
    ) or (status is None and not isinstance(exc, stripe.InvalidRequestError))
    parts = [type(exc).__name__] + ([str(status)] if status else []) + ([str(code)] if code else [])
    return StripeUnavailable(" ".join(parts), retryable=retryable, status=status, code=code)


@dataclass(frozen=True)
class Link:
    """A Stripe-hosted page: Checkout or the Customer Portal."""

    id: str
    url: str
    expires_at: int | None = None


class StripeApi:
    """The Stripe calls billing needs, on the official SDK. `open()` before use, `close()` after."""

    def __init__(self, config: BillingConfig, secret_key: str) -> None:
        self.config = config
        self._secret_key = secret_key
        self._session: aiohttp.ClientSession | None = None
        self._client: stripe.StripeClient | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        http = stripe.AIOHTTPClient(session=self._session, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        self._client = stripe.StripeClient(
            self._secret_key,
            base_addresses={"api": self.config.api_base.rstrip("/")},
            http_client=http,
            max_network_retries=0,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._client = None

    @property
    def client(self) -> stripe.StripeClient:
        assert self._client is not None, "Stripe client is not open"
        return self._client

    async def _call(self, coro) -> Any:
        try:
            return await coro
        except stripe.StripeError as exc:
            raise describe(exc) from None

    # -- customers -----------------------------------------------------------------

    async def create_customer(self, account_id: str, email: str) -> str:
        """A customer with the account's email and its NoorAPI id in metadata; returns `cus_…`.

        The idempotency key is the account id, so a retry after a lost answer finds the same customer.
        """
        customer = await self._call(
            self.client.v1.customers.create_async(
                {"email": email, "metadata": {"noor_account_id": account_id}},
                {"idempotency_key": f"noor-customer-{account_id}"},
            )
        )
        return customer.id

    async def update_customer_email(self, customer_id: str, email: str) -> None:
        await self._call(self.client.v1.customers.update_async(customer_id, {"email": email}))

    async def delete_customer(self, customer_id: str) -> None:
        """Delete the customer (Stripe keeps its invoices and payments); an already deleted one is fine."""
        try:
            await self._call(self.client.v1.customers.delete_async(customer_id))
        except StripeUnavailable as exc:
            if not exc.missing:
                raise

    # -- subscriptions ---------------------------------------------------------------

    async def live_subscriptions(self, customer_id: str) -> list[str]:
        """Ids of the customer's subscriptions that are not canceled yet."""
        page = await self._call(self.client.v1.subscriptions.list_async({"customer": customer_id, "status": "all", "limit": 100}))
        return [s.id for s in page.data if s.to_dict().get("status") not in ("canceled", "incomplete_expired")]

    async def cancel_subscription(self, subscription_id: str) -> None:
        try:
            await self._call(self.client.v1.subscriptions.cancel_async(subscription_id))
        except StripeUnavailable as exc:
            if not exc.missing:
                raise

    # -- usage ---------------------------------------------------------------------

    async def meter_event(self, *, identifier: str, customer_id: str, value: int, timestamp: int) -> None:
        """One meter event; Stripe counts an identifier once, so resending after a lost answer is safe."""
        await self._call(
            self.client.v1.billing.meter_events.create_async(
                {
                    "event_name": self.config.meter_event_name,
                    "identifier": identifier,
                    "timestamp": timestamp,
                    "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                }
            )
        )

    # -- hosted pages ------------------------------------------------------------------

    async def checkout(self, *, account_id: str, customer_id: str, plan: str, price_id: str) -> Link:
        """A Checkout Session for a subscription to `plan`: Stripe collects the card, never NoorAPI."""
        items: list[dict[str, Any]] = [{"price": price_id, "quantity": 1}]
        if self.config.usage_price:
            items.append({"price": self.config.usage_price})  # metered: no quantity
        metadata = {"noor_account_id": account_id, "noor_plan": plan}
        session = await self._call(
            self.client.v1.checkout.sessions.create_async(
                {
                    "mode": "subscription",
                    "customer": customer_id,
                    "client_reference_id": account_id,
                    "line_items": items,
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                    "success_url": self.config.success_url,
                    "cancel_url": self.config.cancel_url,
                }
            )
        )
        return Link(session.id, session.url, session.to_dict().get("expires_at"))

    async def portal(self, customer_id: str) -> Link:
        session = await self._call(
            self.client.v1.billing_portal.sessions.create_async(
                {"customer": customer_id, "return_url": self.config.return_url}
            )
        )
        return Link(session.id, session.url)

    # -- invoices --------------------------------------------------------------------

    async def invoices(self, customer_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """The customer's latest invoices: ids, numbers, amounts, states and Stripe's hosted page."""
        page = await self._call(self.client.v1.invoices.list_async({"customer": customer_id, "limit": limit}))
        return [_invoice_json(invoice.to_dict()) for invoice in page.data]

    # -- webhooks --------------------------------------------------------------------

    def construct_event(self, payload: bytes, signature: str | None, secret: str) -> stripe.Event:
        """Verify `Stripe-Signature` (HMAC-SHA256 of "t.payload", 300 s tolerance) and parse the event.

        Raises `stripe.SignatureVerificationError` for a missing, wrong or stale signature and
        ValueError for a body that is not UTF-8 JSON.
        """
        return self.client.construct_event(payload, signature, secret)


def _invoice_json(invoice: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": invoice.get("id"),
        "number": invoice.get("number"),
        "status": invoice.get("status"),
        "currency": invoice.get("currency"),
        "amount_due": invoice.get("amount_due"),
        "amount_paid": invoice.get("amount_paid"),
        "total": invoice.get("total"),
        "created": invoice.get("created"),
        "period_start": invoice.get("period_start"),
        "period_end": invoice.get("period_end"),
        "hosted_invoice_url": invoice.get("hosted_invoice_url"),
    }
