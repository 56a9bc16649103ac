"""Stripe's webhooks: signatures checked exactly as Stripe makes them (good, tampered, stale, missing,
rotated), every event applied once, and the path a paying customer takes end to end:
free → Checkout → pro (its limits on the next call) → invoice paid (receipt mailed) → subscription
ended → free; and a failed payment → grace period → free (ManualClock) → paid again → pro.
"""

from __future__ import annotations

import json
import time

import aiohttp
from billing_helpers import (  # noqa: F401 - fixture
    PRO_PRICE,
    TEAM_PRICE,
    USAGE_PRICE,
    WEBHOOK_SECRET,
    billing_config,
    event,
    eventually,
    post_event,
    sign,
    stripe,
)
from conftest import SIMULATOR_CONFIG

from noor_daemon.clock import ManualClock
from noor_daemon.state import ACCOUNTS, BILLING, KEYRING, LEDGER, OUTBOX


async def chat(daemon, key: str) -> int:
    """One call; its HTTP status."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{daemon.base_url}/chat/completions",
            json={"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            await response.read()
            return response.status


async def subscribed_customer(daemon, stripe, email: str):
    account = await daemon.app[ACCOUNTS].get_account(email)
    row = await eventually(lambda: daemon.app[BILLING].customer_row(account.id))
    return account, row["customer_id"]


def checkout_completed(account_id: str, customer: str, subscription: str, plan: str = "pro") -> dict:
    return {
        "id": f"cs_test_{account_id[-6:]}",
        "object": "checkout.session",
        "mode": "subscription",
        "customer": customer,
        "subscription": subscription,
        "client_reference_id": account_id,
        "metadata": {"noor_account_id": account_id, "noor_plan": plan},
        "payment_status": "paid",
        "status": "complete",
    }


def invoice(customer: str, amount: int, **extra) -> dict:
    now = int(time.time())
    return {
        "id": extra.pop("id", f"in_test_{amount}_{now}"),
        "object": "invoice",
        "customer": customer,
        "amount_paid": amount,
        "amount_due": amount,
        "currency": "usd",
        "number": "NOOR-0042",
        "status": "paid",
        "period_start": now - 30 * 86400,
        "period_end": now,
        "hosted_invoice_url": "https://invoice.stripe.test/i/42",
        "status_transitions": {"paid_at": now},
        **extra,
    }


async def audit_actions(daemon, prefix: str = "billing.") -> list[tuple[str, dict | None]]:
    rows = await daemon.app[LEDGER].fetchall("SELECT action, details FROM audit_log WHERE action LIKE ? ORDER BY id", (prefix + "%",))
    return [(r["action"], json.loads(r["details"]) if r["details"] else None) for r in rows]


# -- end to end ------------------------------------------------------------------------------


async def test_free_to_pro_and_back_through_checkout_invoice_and_cancellation(start_daemon, stripe, manual_clock):
    daemon = await start_daemon(billing_config(stripe), clock=manual_clock)
    admin = daemon.admin_headers
    key = await daemon.create_key("payer@example.com")  # on the free plan: 2 requests a minute
    account, customer = await subscribed_customer(daemon, stripe, "payer@example.com")
    assert stripe.customers[customer]["email"] == "payer@example.com"
    assert stripe.customers[customer]["metadata"] == {"noor_account_id": account.id}

    assert [await chat(daemon, key) for _ in range(3)] == [200, 200, 429], "the free plan's limit applies"

    # The admin asks for a Checkout page; Stripe gets the plan's price, the metered price, our ids.
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{daemon.url}/admin/v1/billing/accounts/payer@example.com/checkout", json={"plan": "pro"}, headers=admin) as r:
            assert r.status == 201
            link = await r.json()
    session = stripe.checkout_sessions[link["id"]]
    assert link["url"] == session["url"] and link["url"].startswith("https://checkout.stripe.test/")
    assert session["customer"] == customer and session["client_reference_id"] == account.id
    assert session["line_items_sent"] == [{"price": PRO_PRICE, "quantity": "1"}, {"price": USAGE_PRICE}]
    assert session["subscription_data_sent"]["metadata"] == {"noor_account_id": account.id, "noor_plan": "pro"}

    # The customer pays; Stripe sends checkout.session.completed.
    sub = stripe.add_subscription(customer, PRO_PRICE)
    status, body = await post_event(daemon.url, event("checkout.session.completed", checkout_completed(account.id, customer, sub["id"])))
    assert (status, body["outcome"]) == (200, "plan pro")
    assert daemon.app[KEYRING].accounts[account.id].plan == "pro"
    assert await chat(daemon, key) == 200, "the pro plan's limit applies on the very next call"
    assert [await chat(daemon, key) for _ in range(5)] == [200] * 5

    status, body = await post_event(daemon.url, event("customer.subscription.created", sub))
    assert (status, body["outcome"]) == (200, "active, plan pro")

    # Stripe charges the card: invoice.paid → a receipt in the mail outbox.
    paid = invoice(customer, 1200)
    status, body = await post_event(daemon.url, event("invoice.paid", paid))
    assert (status, body["outcome"]) == (200, "receipt queued")
    receipts = await daemon.app[LEDGER].fetchall("SELECT * FROM mail_outbox WHERE kind = 'billing_receipt'")
    assert len(receipts) == 1 and receipts[0]["account_id"] == account.id
    await daemon.app[OUTBOX].send_due()

    def sent_receipt() -> str | None:
        # On PostgreSQL the daemon's own outbox pass may hold the job when send_due runs: it sends it then.
        files = [p for p in (daemon.data_dir / "maildir" / "new").glob("*") if p.is_file()]
        texts = [p.read_text(errors="replace") for p in files]
        return next((t for t in texts if "receipt" in t.lower() and "12.00 USD" in t), None)

    receipt = await eventually(sent_receipt)
    assert "payer@example.com" in receipt and "NOOR-0042" in receipt and "https://invoice.stripe.test/i/42" in receipt

    # The dashboard's view of it.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/billing/accounts/{account.id}", headers=admin) as r:
            state = await r.json()
    assert state["configured"] and state["account"]["plan"] == "pro" and state["customer_id"] == customer
    assert state["subscription"]["id"] == sub["id"] and state["subscription"]["status"] == "active"
    assert state["period"]["source"] == "subscription"
    assert state["usage"]["requests"] == 9 and state["usage"]["errors"] == 1  # the 429 is metered too

    # The customer cancels in the portal; Stripe ends the subscription: back to free, its limit again.
    sub["status"] = "canceled"
    status, body = await post_event(daemon.url, event("customer.subscription.deleted", sub))
    assert (status, body["outcome"]) == (200, "plan free")
    assert daemon.app[KEYRING].accounts[account.id].plan == "free"
    assert await chat(daemon, key) == 429
    plan_changes = await daemon.app[LEDGER].fetchall(
        "SELECT actor, details FROM audit_log WHERE action = 'account.updated' AND account_id = ? ORDER BY id", (account.id,)
    )
    assert [(r["actor"], json.loads(r["details"])) for r in plan_changes] == [("billing", {"plan": "pro"}), ("billing", {"plan": "free"})]


async def test_a_failed_payment_keeps_the_plan_for_the_grace_period_then_downgrades(start_daemon, stripe):
    clock = ManualClock(start=time.time())
    daemon = await start_daemon(billing_config(stripe), clock=clock)  # grace_days = 3
    billing = daemon.app[BILLING]
    key = await daemon.create_key("late.payer@example.com")
    account, customer = await subscribed_customer(daemon, stripe, "late.payer@example.com")
    sub = stripe.add_subscription(customer, TEAM_PRICE)
    await post_event(daemon.url, event("customer.subscription.created", sub))
    assert daemon.app[KEYRING].accounts[account.id].plan == "team"

    status, body = await post_event(daemon.url, event("invoice.payment_failed", invoice(customer, 4900, status="open", attempt_count=1)))
    assert (status, body["outcome"]) == (200, "grace period started")
    sub["status"] = "past_due"
    status, body = await post_event(daemon.url, event("customer.subscription.updated", sub))
    assert body["outcome"] == "past_due"
    again = await post_event(daemon.url, event("invoice.payment_failed", invoice(customer, 4900, status="open", attempt_count=2)))
    assert again[1]["outcome"] == "grace already running"

    clock.advance(3 * 86400 - 60)
    await billing.run_once()
    assert daemon.app[KEYRING].accounts[account.id].plan == "team", "still within the grace period"
    state = await billing.account_document(account, links={})
    assert state["grace"]["downgraded_at"] is None and state["grace"]["grace_until"]

    clock.advance(120)
    assert (await billing.run_once())["downgrades"] == 1
    assert daemon.app[KEYRING].accounts[account.id].plan == "free"
    assert [await chat(daemon, key) for _ in range(3)] == [200, 200, 429], "the free plan's limits, at once"
    assert ("billing.downgraded", {"from": "team", "reason": "payment_failed", "to": "free"}) in await audit_actions(daemon)
    assert (await billing.run_once())["downgrades"] == 0, "downgraded once"

    # The customer updates the card; Stripe collects: the paid plan comes back, the grace period ends.
    status, body = await post_event(daemon.url, event("invoice.paid", invoice(customer, 4900)))
    assert body["outcome"] == "receipt queued"
    assert daemon.app[KEYRING].accounts[account.id].plan == "team"
    assert (await billing.account_document(account, links={}))["grace"] is None


# -- signatures ---------------------------------------------------------------------------------


async def test_signatures_are_checked_like_stripe_and_refusals_audited(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    await daemon.create_key("sig@example.com")
    account, customer = await subscribed_customer(daemon, stripe, "sig@example.com")
    good = event("customer.subscription.created", stripe.add_subscription(customer, PRO_PRICE))
    body = json.dumps(good, separators=(",", ":"))

    tampered = body.replace('"status":"active"', '"status":"trialing"')
    assert tampered != body
    status, answer = await post_event(daemon.url, tampered, signature=sign(body))
    assert (status, answer["error"]["code"]) == (400, "bad_signature")
    status, answer = await post_event(daemon.url, body, signature=sign(body, secret="whsec_someone_else"))
    assert (status, answer["error"]["code"]) == (400, "bad_signature")
    status, answer = await post_event(daemon.url, body, signature=sign(body, timestamp=int(time.time()) - 301))
    assert (status, answer["error"]["code"]) == (400, "stale_signature")
    status, answer = await post_event(daemon.url, body, signature=None)
    assert (status, answer["error"]["code"]) == (400, "missing_signature")
    status, answer = await post_event(daemon.url, body, signature="t=notanumber,v1=00")
    assert (status, answer["error"]["code"]) == (400, "bad_signature")
    status, answer = await post_event(daemon.url, "not json at all", signature=sign)
    assert (status, answer["error"]["code"]) == (400, "malformed")
    assert daemon.app[KEYRING].accounts[account.id].plan == "free", "no refused event changed anything"

    # During a secret rotation Stripe sends several v1 signatures; one that matches is enough.
    t = int(time.time())
    rotated = f"t={t},v1={'0' * 64},{sign(body, timestamp=t).split(',')[1]}"
    status, answer = await post_event(daemon.url, body, signature=rotated)
    assert (status, answer["outcome"]) == (200, "active, plan pro")

    await daemon.app[BILLING].audit.drain()
    refused = [d for a, d in await audit_actions(daemon) if a == "billing.webhook_rejected"]
    assert sorted(d["reason"] for d in refused) == ["bad_signature", "malformed", "missing_signature", "stale_signature"]
    assert next(d for d in refused if d["reason"] == "bad_signature")["count"] == 1  # the next two within the minute are counted, not written
    for _, details in await audit_actions(daemon):
        assert WEBHOOK_SECRET not in json.dumps(details)


async def test_a_replayed_event_changes_nothing(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    await daemon.create_key("replay@example.com")
    account, customer = await subscribed_customer(daemon, stripe, "replay@example.com")
    paid = event("invoice.paid", invoice(customer, 2500))
    first = await post_event(daemon.url, paid)
    second = await post_event(daemon.url, paid)  # Stripe re-delivers, freshly signed
    assert first == (200, {"received": True, "id": paid["id"], "outcome": "receipt queued"})
    assert second == (200, {"received": True, "id": paid["id"], "outcome": "duplicate"})
    receipts = await daemon.app[LEDGER].fetchall("SELECT id FROM mail_outbox WHERE kind = 'billing_receipt'")
    assert len(receipts) == 1

    sub = stripe.add_subscription(customer, PRO_PRICE)
    created = event("customer.subscription.created", sub)
    await post_event(daemon.url, created)
    sub["status"] = "canceled"
    await post_event(daemon.url, event("customer.subscription.deleted", sub))
    assert daemon.app[KEYRING].accounts[account.id].plan == "free"
    _, replay = await post_event(daemon.url, created)  # the old "created" again: still free
    assert replay["outcome"] == "duplicate"
    assert daemon.app[KEYRING].accounts[account.id].plan == "free"


async def test_events_out_of_order_and_for_strangers(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    await daemon.create_key("order@example.com")
    account, customer = await subscribed_customer(daemon, stripe, "order@example.com")
    sub = stripe.add_subscription(customer, PRO_PRICE)
    now = int(time.time())
    older = event("customer.subscription.updated", dict(sub, status="active"), created=now - 10)
    newer = event("customer.subscription.updated", dict(sub, status="unpaid"), created=now)
    assert (await post_event(daemon.url, newer))[1]["outcome"] == "unpaid, plan free"
    assert (await post_event(daemon.url, older))[1]["outcome"] == "stale: a newer subscription event was applied"
    assert daemon.app[KEYRING].accounts[account.id].plan == "free"

    # A plan change in the portal: the price decides the plan.
    upgraded = dict(sub, status="active", items={"object": "list", "data": [{"price": {"id": TEAM_PRICE}}]})
    assert (await post_event(daemon.url, event("customer.subscription.updated", upgraded, created=now + 1)))[1]["outcome"] == "active, plan team"
    assert daemon.app[KEYRING].accounts[account.id].plan == "team"

    stranger = stripe.add_subscription("cus_not_ours", PRO_PRICE)
    for kind, obj in (("customer.subscription.updated", stranger), ("invoice.paid", invoice("cus_not_ours", 100))):
        status, body = await post_event(daemon.url, event(kind, obj))
        assert (status, body["outcome"]) == (200, "ignored: unknown customer")
    status, body = await post_event(daemon.url, event("charge.refunded", {"id": "ch_1", "object": "charge"}))
    assert (status, body["outcome"]) == (200, "ignored")


async def test_without_billing_everything_else_works_and_billing_says_so(start_daemon):
    daemon = await start_daemon(SIMULATOR_CONFIG)
    key = await daemon.create_key("plain@example.com")
    assert await chat(daemon, key) == 200
    status, body = await post_event(daemon.url, event("invoice.paid", invoice("cus_x", 100)))
    assert (status, body["error"]["code"]) == (404, "billing_not_configured")
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.post(f"{daemon.url}/admin/v1/billing/accounts/plain@example.com/checkout", json={"plan": "pro"}) as r:
            assert r.status == 409 and (await r.json())["error"]["code"] == "billing_not_configured"
        async with http.post(f"{daemon.url}/admin/v1/billing/accounts/plain@example.com/portal") as r:
            assert r.status == 409 and "not configured" in (await r.json())["error"]["message"]
        async with http.get(f"{daemon.url}/admin/v1/billing/accounts/plain@example.com") as r:
            state = await r.json()
            assert r.status == 200 and state["configured"] is False and state["usage"]["requests"] == 1
        async with http.get(f"{daemon.url}/admin/v1/billing") as r:
            assert (await r.json())["configured"] is False
        async with http.get(f"{daemon.url}/admin/v1/catalog") as r:
            assert (await r.json())["billing"] == {"configured": False}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        async with http.post(f"{daemon.url}/v1/me/billing/checkout", json={"plan": "pro"}) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "billing_not_configured"
        async with http.get(f"{daemon.url}/v1/me/billing") as r:
            assert (await r.json())["configured"] is False
