"""Billing wired into the daemon: Stripe customers, the meter outbox, webhooks, deletion, grace periods.

`app.py` builds the `BillingService`, hooks it into the `AccountStore`, adds its background pass
as a `cleanup_ctx` entry and its routes (`routes.py`: `POST /stripe/webhook`, the pages Checkout
returns to; `/v1/me/billing…` is in `selfservice/billing.py`). Without `[billing]` in
the config the service exists but is off: its endpoints answer "billing not configured" and
nothing reaches Stripe.

The background pass (every 30 s, or at once when woken) does, each step on its own:
- customers: every account without a Stripe customer gets one (email, and our account id in
  metadata); so existing accounts are backfilled at start, and new ones follow their creation.
  An email correction is sent on to Stripe.
- the meter outbox: closed hours of committed usage are queued, then sent (see meter.py).
- deletions: an erased account's customer is queued (Stripe ids only) inside the erasure's own
  transaction; the pass cancels its subscriptions and deletes the customer, retrying until
  Stripe answers. Stripe keeps its own invoices and payments.
- grace periods: an account whose payment failed keeps its plan `grace_days`, then returns to
  the free plan (`[billing] free_plan`, default `default_plan`) until an invoice is paid.

Nothing here runs on the request path: a plan change is an `AccountStore.update_account`,
which updates the in-memory KeyRing the limiter reads on the next call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiosqlite
from aiohttp import web

from noor_daemon.billing.meter import MeterOutbox, backoff_seconds
from noor_daemon.billing.stripe_api import Link, StripeApi, StripeUnavailable
from noor_daemon.billing.webhooks import ACTIVE, WebhookProcessor
from noor_daemon.clock import Clock, iso
from noor_daemon.config import BillingConfig, Config
from noor_daemon.domain.accounts import Account, KeyRing
from noor_daemon.domain.money import amount
from noor_daemon.domain.windows import calendar_period, covering
from noor_daemon.ledger import rollups
from noor_daemon.ledger.accounts import AccountStore, NotFound
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.mail.outbox import Outbox
from noor_daemon.secret_store import resolve
from noor_daemon.settings import DaemonSettings

log = logging.getLogger(__name__)

POLL_S = 30.0
CUSTOMER_BATCH = 200
DELETION_BATCH = 50
REFUSED_TRIES = 5
INVOICE_CACHE_S = 60.0
PRUNE_EVERY_S = 3600.0
ACTOR = "billing"


class BillingNotConfigured(Exception):
    """No `[billing]` section: nothing can be sent to Stripe."""

    def __init__(self) -> None:
        super().__init__("Billing is not configured on this daemon: add a [billing] section to the config (see the README).")


class BillingConflict(Exception):
    """The request does not fit the account's billing state (e.g. a second subscription)."""


class BillingInvalid(ValueError):
    """A request naming something billing does not offer (e.g. a plan without a Stripe price)."""


class BillingService:
    def __init__(
        self,
        *,
        settings: DaemonSettings,
        ledger: Ledger,
        accounts: AccountStore,
        keyring: KeyRing,
        audit: AuditLog,
        clock: Clock,
        outbox: Outbox,
        secret_key: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.settings = settings
        config = settings.config.config
        self._billing = config.billing
        """`[billing]` as it was at start: a reload that changes it takes effect at the next restart."""
        self.ledger = ledger
        self.accounts = accounts
        self.keyring = keyring
        self.audit = audit
        self.clock = clock
        self.outbox = outbox
        self.webhook_secret = webhook_secret
        self.api: StripeApi | None = None
        self.meter: MeterOutbox | None = None
        if config.billing is not None and secret_key:
            self.api = StripeApi(config.billing, secret_key)
            self.meter = MeterOutbox(
                ledger, clock, self.api, audit, value=config.billing.meter_value, delay_seconds=config.billing.meter_delay_seconds,
                currency=config.budgets.currency,
            )
        self.webhooks = WebhookProcessor(self)
        self.poll_interval = POLL_S
        self._wake = asyncio.Event()
        self._pass = asyncio.Lock()
        self._customer_retry: dict[str, tuple[int, int]] = {}
        """account id -> (failed attempts, next try in ms): backoff for customer creation, kept in memory."""
        self._invoices: dict[str, tuple[float, list[dict]]] = {}
        self._pruned_at = 0.0
        self.passes = 0

    # -- basics --------------------------------------------------------------------

    @property
    def configured(self) -> bool:
        return self.api is not None

    @property
    def config(self) -> Config:
        """The current config (plans, prices), as a reload left it."""
        return self.settings.config.config

    @property
    def billing(self) -> BillingConfig:
        if self._billing is None:
            raise BillingNotConfigured()
        return self._billing

    @property
    def free_plan(self) -> str:
        billing = self._billing
        return (billing.free_plan if billing and billing.free_plan else None) or self.config.default_plan

    def plan_for_prices(self, price_ids: list[str]) -> str | None:
        """The paid plan a subscription's prices buy (the first plan whose price is among them)."""
        for plan, price in self.billing.prices.items():
            if price in price_ids:
                return plan
        return None

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def wake(self) -> None:
        self._wake.set()

    def _require(self) -> StripeApi:
        if self.api is None:
            raise BillingNotConfigured()
        return self.api

    # -- account hooks -------------------------------------------------------------------

    def hook_into(self, store: AccountStore) -> None:
        store.on_created.append(self._on_created)
        store.on_email_changed.append(self._on_email_changed)
        store.on_erase.append(self._on_erase)
        store.on_account_deleted.append(self._after_delete)

    async def _on_created(self, db: aiosqlite.Connection, account: Account, actor: str) -> None:
        self.wake()  # the pass reads through the writer lock, so it finds the account once this commits

    async def _on_email_changed(self, db: aiosqlite.Connection, account: Account, new_email: str, actor: str) -> None:
        await db.execute("UPDATE billing_customers SET email_synced = 0 WHERE account_id = ?", (account.id,))
        self.wake()

    async def _on_erase(self, db: aiosqlite.Connection, account: Account, keys: list[tuple[str, str]], actor: str) -> None:
        """Inside the erasure: the customer moves to the deletion queue by Stripe ids alone; no row names the account."""
        async with db.execute(
            "SELECT customer_id, subscription_id FROM billing_customers WHERE account_id = ?", (account.id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None:
            now = self.now_ms()
            await db.execute(
                "INSERT INTO billing_deletions (customer_id, subscription_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
                (row[0], row[1], now, now),
            )
        await db.execute("DELETE FROM billing_customers WHERE account_id = ?", (account.id,))
        await db.execute("DELETE FROM billing_meter_outbox WHERE account_id = ?", (account.id,))
        self._customer_retry.pop(account.id, None)

    async def _after_delete(self, account: Account) -> None:
        self.wake()

    # -- the background pass ----------------------------------------------------------------

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """`cleanup_ctx`: after the ledger opened, open the Stripe client and run the pass."""
        if not self.configured:
            yield
            return
        assert self.api is not None and self.meter is not None
        await self.api.open()
        await self.meter.load()
        task = asyncio.create_task(self.loop(), name="billing")
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await self.api.close()

    async def loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                async with self.ledger.exclusive("billing") as mine:  # several daemons: one talks to Stripe
                    if mine:
                        await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("billing pass failed: %s", type(exc).__name__)
            try:  # not wait_for: on Python 3.11 it can swallow a cancellation that arrives as the event is set
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def run_once(self) -> dict[str, Any]:
        """One pass of every step (one pass at a time); a failing step does not stop the others."""
        assert self.meter is not None
        async with self._pass:
            results: dict[str, Any] = {}
            for name, step in (
                ("customers", self.sync_customers),
                ("meter_queued", self.meter.fill),
                ("meter_sent", self.meter.send_due),
                ("deletions", self.process_deletions),
                ("downgrades", self.enforce_grace),
            ):
                try:
                    results[name] = await step()
                except Exception as exc:  # the ledger is busy, Stripe answered oddly: next pass
                    log.error("billing step %s failed: %s", name, type(exc).__name__)
                    results[name] = None
            if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                try:
                    await self.meter.prune()
                    await self.webhooks.prune()
                except Exception as exc:
                    log.error("billing prune failed: %s", type(exc).__name__)
            self.passes += 1
            return results

    # -- customers ---------------------------------------------------------------------------

    async def sync_customers(self) -> int:
        """Create the missing customers and send email corrections on; returns customers created."""
        api = self._require()
        now = self.now_ms()

        async def todo(db: aiosqlite.Connection) -> tuple[list, list]:
            async with db.execute(
                """SELECT a.id, a.email FROM accounts a LEFT JOIN billing_customers c ON c.account_id = a.id
                   WHERE c.account_id IS NULL ORDER BY a.created_at, a.id LIMIT ?""",
                (CUSTOMER_BATCH,),
            ) as cursor:
                missing = list(await cursor.fetchall())
            async with db.execute(
                """SELECT c.account_id, c.customer_id, a.email FROM billing_customers c JOIN accounts a ON a.id = c.account_id
                   WHERE c.email_synced = 0 LIMIT ?""",
                (CUSTOMER_BATCH,),
            ) as cursor:
                stale = list(await cursor.fetchall())
            return missing, stale

        missing, stale = await self.ledger.write(todo)  # the writer lock: every committed account is seen
        created = 0
        for account_id, email in missing:
            attempts, next_at = self._customer_retry.get(account_id, (0, 0))
            if next_at > now:
                continue
            try:
                customer_id = await api.create_customer(account_id, email)
            except StripeUnavailable as exc:
                self._customer_retry[account_id] = (attempts + 1, now + int(backoff_seconds(attempts + 1) * 1000))
                log.warning("creating a Stripe customer failed (attempt %d): %s", attempts + 1, exc.reason)
                if exc.retryable:
                    break
                continue
            self._customer_retry.pop(account_id, None)
            created += await self._record_customer(account_id, email, customer_id)
        for account_id, customer_id, email in stale:
            try:
                await api.update_customer_email(customer_id, email)
            except StripeUnavailable as exc:
                log.warning("updating a Stripe customer's email failed: %s", exc.reason)
                if exc.retryable:
                    break
                continue

            async def synced(db: aiosqlite.Connection, account_id: str = account_id, email: str = email) -> None:
                await db.execute(
                    """UPDATE billing_customers SET email_synced = 1, updated_at = ?
                       WHERE account_id = ? AND (SELECT email FROM accounts WHERE id = ?) = ?""",
                    (self.now_ms(), account_id, account_id, email),
                )

            await self.ledger.write(synced)
        return created

    async def _record_customer(self, account_id: str, email: str, customer_id: str) -> int:
        now = self.now_ms()

        async def record(db: aiosqlite.Connection) -> int:
            async with db.execute("SELECT email FROM accounts WHERE id = ?", (account_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:  # erased while Stripe was asked: the new customer goes too
                await db.execute(
                    "INSERT INTO billing_deletions (customer_id, next_attempt_at, created_at) VALUES (?, ?, ?)",
                    (customer_id, now, now),
                )
                return 0
            cursor = await db.execute(
                """INSERT OR IGNORE INTO billing_customers (account_id, customer_id, email_synced, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (account_id, customer_id, int(row[0].lower() == email.lower()), now, now),
            )
            if cursor.rowcount:
                await self.audit.add_in(
                    db, AuditEntry("billing.customer_created", ACTOR, "stripe_customer", customer_id, account_id)
                )
            return cursor.rowcount

        return await self.ledger.write(record)

    async def customer_row(self, account_id: str) -> dict | None:
        row = await self.ledger.fetchone("SELECT * FROM billing_customers WHERE account_id = ?", (account_id,))
        return dict(row) if row is not None else None

    async def ensure_customer(self, account: Account) -> str:
        """The account's Stripe customer, created now if the background pass has not yet."""
        api = self._require()
        row = await self.customer_row(account.id)
        if row is not None:
            return row["customer_id"]
        customer_id = await api.create_customer(account.id, account.email)
        await self._record_customer(account.id, account.email, customer_id)
        row = await self.customer_row(account.id)
        if row is None:
            raise NotFound(f"no account {account.id}")
        return row["customer_id"]

    # -- deletions ----------------------------------------------------------------------------

    async def process_deletions(self) -> int:
        """Cancel the subscriptions of erased accounts' customers and delete the customers."""
        api = self._require()
        rows = await self.ledger.fetchall(
            "SELECT * FROM billing_deletions WHERE next_attempt_at <= ? ORDER BY id LIMIT ?", (self.now_ms(), DELETION_BATCH)
        )
        done = 0
        for row in rows:
            customer_id = row["customer_id"]
            try:
                subscriptions = set(await api.live_subscriptions(customer_id))
                if row["subscription_id"]:
                    subscriptions.add(row["subscription_id"])
                for subscription_id in sorted(subscriptions):
                    await api.cancel_subscription(subscription_id)
                await api.delete_customer(customer_id)
            except StripeUnavailable as exc:
                if not exc.missing:
                    if await self._deletion_failed(dict(row), exc):
                        break
                    continue
                subscriptions = set()

            async def finished(db: aiosqlite.Connection, row=row, canceled=len(subscriptions)) -> None:
                await db.execute("DELETE FROM billing_deletions WHERE id = ?", (row["id"],))
                await self.audit.add_in(
                    db,
                    AuditEntry("billing.customer_deleted", ACTOR, "stripe_customer", row["customer_id"], None, {"subscriptions_canceled": canceled}),
                )

            await self.ledger.write(finished)
            done += 1
        return done

    async def _deletion_failed(self, row: dict, exc: StripeUnavailable) -> bool:
        """Back off (or give up on a refusal); returns True when the rest should wait for the next pass."""
        attempts = row["attempts"] + 1
        give_up = not exc.retryable and attempts >= REFUSED_TRIES

        async def record(db: aiosqlite.Connection) -> None:
            if give_up:
                await db.execute("DELETE FROM billing_deletions WHERE id = ?", (row["id"],))
                await self.audit.add_in(
                    db,
                    AuditEntry("billing.customer_deletion_failed", ACTOR, "stripe_customer", row["customer_id"], None, {"error": exc.reason, "attempts": attempts}),
                )
            else:
                await db.execute(
                    "UPDATE billing_deletions SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
                    (attempts, exc.reason, self.now_ms() + int(backoff_seconds(attempts) * 1000), row["id"]),
                )

        await self.ledger.write(record)
        log.warning("deleting a Stripe customer failed (attempt %d): %s", attempts, exc.reason)
        return exc.retryable

    # -- plans and grace -----------------------------------------------------------------------

    async def set_plan(self, account: Account, plan: str, *, reason: str) -> bool:
        """Move the account to `plan` through the AccountStore (ledger, audit, KeyRing): its next call sees it."""
        live = self.keyring.accounts.get(account.id, account)
        if live.plan == plan:
            return False
        await self.accounts.update_account(account.id, plan=plan, actor=ACTOR)
        log.info("account plan changed by billing (%s)", reason)
        return True

    async def enforce_grace(self) -> int:
        """Accounts whose grace period after a failed payment ran out go to the free plan."""
        self._require()
        now = self.now_ms()
        rows = await self.ledger.fetchall(
            """SELECT account_id, grace_until FROM billing_customers
               WHERE grace_until IS NOT NULL AND grace_until <= ? AND downgraded_at IS NULL""",
            (now,),
        )
        free = self.free_plan
        downgraded = 0
        for row in rows:
            try:
                account = await self.accounts.get_account(row["account_id"])
            except NotFound:
                continue
            previous = self.keyring.accounts.get(account.id, account).plan
            await self.set_plan(account, free, reason="grace period ended")

            async def mark(db: aiosqlite.Connection, account_id: str = account.id, previous: str = previous) -> None:
                await db.execute(
                    "UPDATE billing_customers SET downgraded_at = ?, updated_at = ? WHERE account_id = ? AND downgraded_at IS NULL",
                    (now, now, account_id),
                )
                await self.audit.add_in(
                    db,
                    AuditEntry("billing.downgraded", ACTOR, "account", account_id, account_id, {"from": previous, "to": free, "reason": "payment_failed"}),
                )

            await self.ledger.write(mark)
            downgraded += 1
        return downgraded

    # -- hosted pages ------------------------------------------------------------------------------

    async def checkout(self, account: Account, plan: str, *, actor: str = "admin") -> Link:
        api = self._require()
        prices = self.billing.prices
        if plan not in prices:
            offered = ", ".join(prices) or "none ([billing.prices] is empty)"
            raise BillingInvalid(f"`plan` must be a paid plan with a Stripe price: {offered}.")
        row = await self.customer_row(account.id)
        if row and row["subscription_id"] and row["subscription_status"] in (*ACTIVE, "past_due"):
            raise BillingConflict(
                f"The account already has a subscription ({row['subscription_status']}); change or cancel it in the customer portal."
            )
        customer_id = await self.ensure_customer(account)
        link = await api.checkout(account_id=account.id, customer_id=customer_id, plan=plan, price_id=prices[plan])
        await self.audit.add(
            AuditEntry("billing.checkout_created", actor, "stripe_checkout", link.id, account.id, {"plan": plan})
        )
        return link

    async def portal(self, account: Account) -> Link:
        api = self._require()
        return await api.portal(await self.ensure_customer(account))

    # -- what the dashboard shows ---------------------------------------------------------------------

    async def invoices(self, customer_id: str) -> list[dict]:
        """The customer's latest invoices from Stripe, kept a minute so dashboard polls do not hammer it."""
        api = self._require()
        cached = self._invoices.get(customer_id)
        if cached is not None and time.monotonic() - cached[0] < INVOICE_CACHE_S:
            return cached[1]
        invoices = await api.invoices(customer_id)
        self._invoices[customer_id] = (time.monotonic(), invoices)
        return invoices

    async def account_document(self, account: Account, *, links: dict[str, str], with_meter: bool = True) -> dict[str, Any]:
        """Plan, billing state, this period's usage with its estimated charge, links and the last invoices."""
        account = self.keyring.accounts.get(account.id, account)
        now = self.now_ms()
        row = await self.customer_row(account.id) if self.configured else None
        if row and row["period_start"] and row["period_end"] and now < row["period_end"]:
            window, source = covering(row["period_start"], row["period_end"]), "subscription"
        else:
            window, source = calendar_period("month", now), "calendar_month"
        start, end = window.start, window.end
        union, params = rollups.union(
            "model, sum(requests) AS requests, sum(errors) AS errors, sum(prompt_tokens) AS prompt, "
            "sum(completion_tokens) AS completion, sum(cost) AS cost, sum(unpriced) AS unpriced",
            window,
            account.id,
            group_by="model",
        )
        rows = await self.ledger.fetchall(
            f"""SELECT model, sum(requests) AS requests, sum(errors) AS errors, sum(prompt) AS prompt,
                       sum(completion) AS completion, sum(cost) AS cost, sum(unpriced) AS unpriced
                FROM ({union}) AS u GROUP BY model ORDER BY model""",
            tuple(params),
        )
        models, unpriced, total = [], [], 0
        for r in rows:
            cost = int(r["cost"])  # each call's cost as metered, at the prices of its day
            total += cost
            if r["unpriced"]:
                unpriced.append(r["model"])
            models.append(
                {
                    "model": r["model"], "requests": r["requests"], "errors": r["errors"], "prompt_tokens": r["prompt"],
                    "completion_tokens": r["completion"], "cost": amount(cost) if not r["unpriced"] or cost else None,
                }
            )
        usage = {
            "requests": sum(m["requests"] for m in models),
            "errors": sum(m["errors"] for m in models),
            "prompt_tokens": sum(m["prompt_tokens"] for m in models),
            "completion_tokens": sum(m["completion_tokens"] for m in models),
        }
        usage["tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        document: dict[str, Any] = {
            "configured": self.configured,
            "account": {"id": account.id, "email": account.email, "plan": account.plan, "status": account.status},
            "free_plan": self.free_plan,
            "paid_plans": dict(self._billing.prices) if self.configured and self._billing else {},
            "customer_id": row["customer_id"] if row else None,
            "subscription": _subscription_json(row),
            "grace": _grace_json(row),
            "period": {"start": iso(start), "end": iso(end), "source": source},
            "usage": {**usage, "models": models},
            "estimate": {
                "amount": amount(total),
                "priced": True,
                "unpriced_models": unpriced,
                "basis": "each call's cost at the price table in effect when it was metered; the plan's own price is in Stripe",
            },
            "links": links if self.configured else {},
            "invoices": None,
            "invoices_error": None,
        }
        if not self.configured:
            document["message"] = "Billing is not configured on this daemon: nobody is charged."
            return document
        if with_meter and self.meter is not None:
            document["meter"] = {"event_name": self.billing.meter_event_name, **await self.meter.summary(account.id)}
        if row:
            try:
                document["invoices"] = await self.invoices(row["customer_id"])
            except StripeUnavailable as exc:
                document["invoices_error"] = exc.reason
        return document

    async def export_section(self, account: Account) -> dict[str, Any] | None:
        """The `billing` section of the account's data export: what this daemon keeps (Stripe ids and states)."""
        row = await self.customer_row(account.id)
        if row is None:
            return None
        return {
            "stripe_customer_id": row["customer_id"],
            "subscription": _subscription_json(row),
            "grace": _grace_json(row),
            "note": "Payments, cards and invoices are kept by Stripe; ask them or use the customer portal.",
        }

    async def summary(self) -> dict[str, Any]:
        """The daemon's billing state for `GET /admin/v1/billing` (no emails, Stripe ids only as counts)."""
        if not self.configured:
            return {"configured": False, "message": "Billing is not configured on this daemon: nobody is charged."}
        assert self.meter is not None
        billing = self.billing
        one = self.ledger.fetchone
        customers = (await one("SELECT count(*) AS n FROM billing_customers"))["n"]
        without = (await one(
            "SELECT count(*) AS n FROM accounts a LEFT JOIN billing_customers c ON c.account_id = a.id WHERE c.account_id IS NULL"
        ))["n"]
        subscribed = (await one(
            "SELECT count(*) AS n FROM billing_customers WHERE subscription_status IN ('active', 'trialing', 'past_due')"
        ))["n"]
        in_grace = (await one("SELECT count(*) AS n FROM billing_customers WHERE grace_until IS NOT NULL AND downgraded_at IS NULL"))["n"]
        deletions = (await one("SELECT count(*) AS n FROM billing_deletions"))["n"]
        hooks = await one("SELECT count(*) AS n, max(received_at) AS last FROM billing_webhook_events")
        return {
            "configured": True,
            "api_base": billing.api_base,
            "meter_event_name": billing.meter_event_name,
            "free_plan": self.free_plan,
            "paid_plans": dict(billing.prices),
            "usage_price": billing.usage_price,
            "grace_days": billing.grace_days,
            "customers": customers,
            "accounts_without_customer": without,
            "subscriptions": subscribed,
            "in_grace": in_grace,
            "deletions_pending": deletions,
            "meter": await self.meter.summary(),
            "webhooks": {"processed": hooks["n"], "last_received_at": iso(hooks["last"])},
        }


def _subscription_json(row: dict | None) -> dict | None:
    if not row or not row["subscription_id"]:
        return None
    return {
        "id": row["subscription_id"],
        "status": row["subscription_status"],
        "plan": row["subscription_plan"],
        "current_period_start": iso(row["period_start"]),
        "current_period_end": iso(row["period_end"]),
    }


def _grace_json(row: dict | None) -> dict | None:
    if not row or not row["grace_until"]:
        return None
    return {
        "payment_failed_at": iso(row["past_due_since"]),
        "grace_until": iso(row["grace_until"]),
        "downgraded_at": iso(row["downgraded_at"]),
    }


def stripe_secrets(config: Config) -> tuple[str | None, str | None]:
    """The Stripe secret key and webhook secret, resolved at start (`keyring:`/`env:` references)."""
    if config.billing is None:
        return None, None
    return (
        resolve(config.billing.secret_key, what="[billing] secret_key"),
        resolve(config.billing.webhook_secret, what="[billing] webhook_secret"),
    )
