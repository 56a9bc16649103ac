"""Stripe's webhooks: `POST /stripe/webhook`, verified with the SDK, each event applied once.

The `Stripe-Signature` header (`t=…,v1=…`: HMAC-SHA256 of "t.payload" under the endpoint's
secret) is checked by `StripeClient.construct_event`, which also refuses a timestamp older
than 300 s. A missing, wrong or stale signature is answered 400 and audited (at most once a
minute per reason, with a count, so a flood cannot fill the audit log).

Events are applied one at a time and their ids are kept (`billing_webhook_events`), so a
replayed or re-delivered event changes nothing. A plan change goes through
`AccountStore.update_account`, which updates the in-memory KeyRing: the account's next call is
limited by its new plan. Plan changes are applied before the event is recorded (they are
idempotent), and a receipt mail is queued in the same transaction that records its event, so
a crash in between neither loses nor repeats anything. An older subscription event than the
last one applied is recorded but changes nothing (Stripe does not promise delivery order).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiosqlite
import stripe
from aiohttp import web

from noor_daemon.domain.accounts import Account
from noor_daemon.domain.money import format_amount
from noor_daemon.ledger.accounts import NotFound
from noor_daemon.ledger.audit import AuditEntry
from noor_daemon.mail import templates

if TYPE_CHECKING:
    from noor_daemon.billing.service import BillingService

log = logging.getLogger(__name__)

ACTIVE = ("active", "trialing")
ENDED = ("canceled", "unpaid", "incomplete_expired", "paused")
KEEP_EVENTS_MS = 30 * 86_400_000
AUDIT_EVERY_S = 60.0


def _subscription_period(sub: dict) -> tuple[int | None, int | None]:
    """The current period (seconds): on the subscription in older API versions, on its items since 2025-03."""
    start, end = sub.get("current_period_start"), sub.get("current_period_end")
    if start is None or end is None:
        for item in (sub.get("items") or {}).get("data") or []:
            start = start or item.get("current_period_start")
            end = end or item.get("current_period_end")
    return start, end


def _price_ids(sub: dict) -> list[str]:
    ids = []
    for item in (sub.get("items") or {}).get("data") or []:
        price = item.get("price") or item.get("plan") or {}
        if isinstance(price, dict) and price.get("id"):
            ids.append(price["id"])
        elif isinstance(price, str):
            ids.append(price)
    return ids


class Rejections:
    """Audit of refused webhook calls: one entry per reason per minute, carrying how many were refused."""

    def __init__(self, service: BillingService) -> None:
        self.service = service
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def note(self, reason: str, remote: str | None) -> None:
        now = time.monotonic()
        last = self._last.get(reason)
        if last is not None and now - last < AUDIT_EVERY_S:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last[reason] = now
        count = 1 + self._suppressed.pop(reason, 0)
        self.service.audit.add_soon(
            AuditEntry("billing.webhook_rejected", "stripe", "webhook", None, None, {"reason": reason, "count": count, "remote": remote})
        )


class WebhookProcessor:
    def __init__(self, service: BillingService) -> None:
        self.service = service
        self.rejections = Rejections(service)
        self._lock = asyncio.Lock()
        self._handlers: dict[str, Callable[[dict, dict], Awaitable[str]]] = {
            "checkout.session.completed": self._checkout_completed,
            "customer.subscription.created": self._subscription_changed,
            "customer.subscription.updated": self._subscription_changed,
            "customer.subscription.deleted": self._subscription_deleted,
            "invoice.paid": self._invoice_paid,
            "invoice.payment_failed": self._payment_failed,
        }
        self.processed = 0

    @property
    def ledger(self):
        return self.service.ledger

    # -- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        service = self.service
        if not service.configured:
            return web.json_response(
                {"error": {"message": "Billing is not configured on this daemon ([billing] in the config).", "code": "billing_not_configured"}},
                status=404,
            )
        payload = await request.read()
        signature = request.headers.get("Stripe-Signature")
        try:
            event = service.api.construct_event(payload, signature, service.webhook_secret)
            data = event.to_dict()
        except stripe.SignatureVerificationError as exc:
            text = str(exc)
            reason = (
                "missing_signature" if not signature else "stale_signature" if "tolerance" in text else "bad_signature"
            )
            self.rejections.note(reason, request.remote)
            return web.json_response({"error": {"message": "The Stripe-Signature is missing, wrong or too old.", "code": reason}}, status=400)
        except (ValueError, TypeError):
            self.rejections.note("malformed", request.remote)
            return web.json_response({"error": {"message": "The body is not a Stripe event.", "code": "malformed"}}, status=400)
        if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
            self.rejections.note("malformed", request.remote)
            return web.json_response({"error": {"message": "The body is not a Stripe event.", "code": "malformed"}}, status=400)
        try:
            outcome = await self.process(data)
        except Exception as exc:  # Stripe retries a 500 later; the event was not recorded
            log.error("stripe event %s (%s) failed: %s", data["id"], data["type"], type(exc).__name__)
            return web.json_response({"error": {"message": "The event could not be applied; retry later.", "code": "internal_error"}}, status=500)
        return web.json_response({"received": True, "id": data["id"], "outcome": outcome})

    # -- processing ------------------------------------------------------------------------

    async def process(self, event: dict) -> str:
        """Apply `event` once; returns what happened (`duplicate` for one already applied)."""
        async with self._lock:
            row = await self.ledger.fetchone("SELECT outcome FROM billing_webhook_events WHERE event_id = ?", (event["id"],))
            if row is not None:
                return "duplicate"
            obj = ((event.get("data") or {}).get("object")) or {}
            handler = self._handlers.get(event["type"])
            self._recorded = False
            outcome = await handler(event, obj) if handler else "ignored"
            if not self._recorded:
                await self.ledger.write(lambda db: self._record_in(db, event, outcome))
            self.processed += 1
            log.info("stripe event %s (%s): %s", event["id"], event["type"], outcome)
            return outcome

    async def _record_in(self, db: aiosqlite.Connection, event: dict, outcome: str) -> None:
        await db.execute(
            "INSERT OR IGNORE INTO billing_webhook_events (event_id, type, created, received_at, outcome) VALUES (?, ?, ?, ?, ?)",
            (event["id"], event["type"], event.get("created"), self.service.now_ms(), outcome),
        )
        self._recorded = True

    async def _account_for(self, customer: Any, fallback_account_id: str | None = None) -> tuple[Account, dict | None] | None:
        """The account a Stripe customer (or, failing that, our own id in metadata) belongs to, with its billing row."""
        customer_id = customer.get("id") if isinstance(customer, dict) else customer
        row = None
        if customer_id:
            row = await self.ledger.fetchone("SELECT * FROM billing_customers WHERE customer_id = ?", (customer_id,))
        account_id = row["account_id"] if row is not None else fallback_account_id
        if not account_id or not str(account_id).startswith("acct_"):
            return None
        try:
            account = await self.service.accounts.get_account(account_id)
        except NotFound:
            return None
        if row is None:
            row = await self.ledger.fetchone("SELECT * FROM billing_customers WHERE account_id = ?", (account.id,))
            if row is not None and customer_id and row["customer_id"] != customer_id:
                return None  # another customer than the one we created for this account
        return account, (dict(row) if row is not None else None)

    # -- handlers ----------------------------------------------------------------------

    async def _checkout_completed(self, event: dict, session: dict) -> str:
        if session.get("mode") != "subscription":
            return "ignored: not a subscription checkout"
        metadata = session.get("metadata") or {}
        found = await self._account_for(session.get("customer"), session.get("client_reference_id") or metadata.get("noor_account_id"))
        if found is None:
            return "ignored: unknown customer"
        account, row = found
        if row is None:
            return "ignored: no customer on record"
        plan = metadata.get("noor_plan")
        if plan not in self.service.billing.prices:
            return "recorded: plan comes with the subscription"
        if session.get("payment_status") not in ("paid", "no_payment_required"):
            return "recorded: payment pending"
        await self.service.set_plan(account, plan, reason="checkout")
        subscription = session.get("subscription")
        subscription_id = subscription.get("id") if isinstance(subscription, dict) else subscription

        async def finish(db: aiosqlite.Connection) -> None:
            await db.execute(
                """UPDATE billing_customers SET subscription_id = coalesce(?, subscription_id),
                       subscription_status = coalesce(subscription_status, 'active'), subscription_plan = ?,
                       past_due_since = NULL, grace_until = NULL, downgraded_at = NULL, updated_at = ?
                   WHERE account_id = ?""",
                (subscription_id, plan, self.service.now_ms(), account.id),
            )
            await self._record_in(db, event, f"plan {plan}")

        await self.ledger.write(finish)
        return f"plan {plan}"

    async def _subscription_changed(self, event: dict, sub: dict) -> str:
        found = await self._account_for(sub.get("customer"), (sub.get("metadata") or {}).get("noor_account_id"))
        if found is None:
            return "ignored: unknown customer"
        account, row = found
        if row is None:
            return "ignored: no customer on record"
        created = event.get("created") or 0
        if row["subscription_event_at"] and created < row["subscription_event_at"]:
            return "stale: a newer subscription event was applied"
        status = sub.get("status") or ""
        current = row["subscription_id"]
        if current and current != sub.get("id") and row["subscription_status"] in ACTIVE and status not in ACTIVE:
            return "ignored: not the account's current subscription"
        plan = self.service.plan_for_prices(_price_ids(sub)) or (sub.get("metadata") or {}).get("noor_plan")
        if plan not in self.service.billing.prices:
            plan = None
        # An "active" older than the failed payment that started a grace period does not end it.
        before_failure = bool(row["past_due_since"]) and created * 1000 < row["past_due_since"]
        target: str | None = None
        clear_grace = False
        if status in ACTIVE and plan and not before_failure:
            target, clear_grace = plan, True
        elif status in ENDED:
            target, clear_grace = self.service.free_plan, True
        # past_due: the grace period decides; incomplete: nothing is paid yet.
        if target is not None:
            await self.service.set_plan(account, target, reason=f"subscription {status}")
        start, end = _subscription_period(sub)
        outcome = status + (f", plan {target}" if target else "")

        async def finish(db: aiosqlite.Connection) -> None:
            await db.execute(
                f"""UPDATE billing_customers SET subscription_id = ?, subscription_status = ?, subscription_plan = ?,
                       period_start = ?, period_end = ?, subscription_event_at = ?, updated_at = ?
                       {', past_due_since = NULL, grace_until = NULL, downgraded_at = NULL' if clear_grace else ''}
                   WHERE account_id = ?""",
                (
                    sub.get("id"), status, plan, start * 1000 if start else None, end * 1000 if end else None,
                    created, self.service.now_ms(), account.id,
                ),
            )
            await self._record_in(db, event, outcome)

        await self.ledger.write(finish)
        return outcome

    async def _subscription_deleted(self, event: dict, sub: dict) -> str:
        found = await self._account_for(sub.get("customer"), (sub.get("metadata") or {}).get("noor_account_id"))
        if found is None:
            return "ignored: unknown customer"
        account, row = found
        if row is None:
            return "ignored: no customer on record"
        if row["subscription_id"] and row["subscription_id"] != sub.get("id"):
            return "ignored: not the account's current subscription"
        free = self.service.free_plan
        await self.service.set_plan(account, free, reason="subscription ended")

        async def finish(db: aiosqlite.Connection) -> None:
            await db.execute(
                """UPDATE billing_customers SET subscription_status = 'canceled', subscription_plan = NULL,
                       period_start = NULL, period_end = NULL, subscription_event_at = max(coalesce(subscription_event_at, 0), ?),
                       past_due_since = NULL, grace_until = NULL, downgraded_at = NULL, updated_at = ?
                   WHERE account_id = ?""",
                (event.get("created") or 0, self.service.now_ms(), account.id),
            )
            await self._record_in(db, event, f"plan {free}")

        await self.ledger.write(finish)
        return f"plan {free}"

    async def _invoice_paid(self, event: dict, invoice: dict) -> str:
        found = await self._account_for(invoice.get("customer"))
        if found is None:
            return "ignored: unknown customer"
        account, row = found
        restored = None
        if row and row["downgraded_at"] and row["subscription_status"] in (*ACTIVE, "past_due") and row["subscription_plan"]:
            restored = row["subscription_plan"]
            await self.service.set_plan(account, restored, reason="invoice paid")
        amount = int(invoice.get("amount_paid") or 0)
        currency = str(invoice.get("currency") or "usd")
        paid_at = ((invoice.get("status_transitions") or {}).get("paid_at") or event.get("created") or 0) * 1000
        outbox = self.service.outbox

        async def finish(db: aiosqlite.Connection) -> None:
            if amount > 0:
                start, end = invoice.get("period_start"), invoice.get("period_end")
                period = (
                    f"the period {templates.day(start * 1000)} to {templates.day(end * 1000)}"
                    if start and end and end > start else "your subscription"
                )
                rendered = templates.billing_receipt(
                    amount=format_amount(amount, currency), currency=currency, period=period, paid_at=paid_at or self.service.now_ms(),
                    reference=invoice.get("number") or invoice.get("id"), url=invoice.get("hosted_invoice_url"),
                )
                await outbox.enqueue_in(db, rendered, account.email, account_id=account.id)
            await db.execute(
                """UPDATE billing_customers SET past_due_since = NULL, grace_until = NULL, downgraded_at = NULL, updated_at = ?
                   WHERE account_id = ?""",
                (self.service.now_ms(), account.id),
            )
            await self.service.audit.add_in(
                db,
                AuditEntry(
                    "billing.invoice_paid", "stripe", "stripe_invoice", invoice.get("id"), account.id,
                    {"amount": amount, "currency": currency, "receipt": amount > 0, **({"plan_restored": restored} if restored else {})},
                ),
            )
            await self._record_in(db, event, "receipt queued" if amount > 0 else "paid, nothing to receipt")

        await self.ledger.write(finish)
        return "receipt queued" if amount > 0 else "paid, nothing to receipt"

    async def _payment_failed(self, event: dict, invoice: dict) -> str:
        found = await self._account_for(invoice.get("customer"))
        if found is None:
            return "ignored: unknown customer"
        account, row = found
        if row is None:
            return "ignored: no customer on record"
        now = self.service.now_ms()
        if row["past_due_since"]:
            return "grace already running"
        grace_until = now + int(self.service.billing.grace_days * 86_400_000)
        failed_at = (event.get("created") or 0) * 1000 or now  # Stripe's time, to order it against subscription events

        async def finish(db: aiosqlite.Connection) -> None:
            await db.execute(
                "UPDATE billing_customers SET past_due_since = ?, grace_until = ?, updated_at = ? WHERE account_id = ?",
                (failed_at, grace_until, now, account.id),
            )
            await self.service.audit.add_in(
                db,
                AuditEntry(
                    "billing.payment_failed", "stripe", "stripe_invoice", invoice.get("id"), account.id,
                    {"attempt": invoice.get("attempt_count"), "grace_until": grace_until},
                ),
            )
            await self._record_in(db, event, "grace period started")

        await self.ledger.write(finish)
        self.service.wake()
        return "grace period started"

    async def prune(self) -> int:
        cutoff = self.service.now_ms() - KEEP_EVENTS_MS

        async def prune(db: aiosqlite.Connection) -> int:
            cursor = await db.execute("DELETE FROM billing_webhook_events WHERE received_at < ?", (cutoff,))
            return cursor.rowcount

        return await self.ledger.write(prune)
