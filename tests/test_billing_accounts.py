"""Stripe customers for accounts (created, backfilled, corrected), deletion reaching Stripe, Checkout and
portal links through the admin API, the client, the CLI and /v1/me; all against the Stripe stand-in."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from billing_helpers import PRO_PRICE, billing_config, event, eventually, post_event, stripe  # noqa: F401 - fixture
from click.testing import CliRunner
from conftest import ADMIN_TOKEN, SIMULATOR_CONFIG

from noor_daemon.cli import cli
from noor_daemon.client import AccountBilling, AdminApiError, AdminClient, MeClient
from noor_daemon.clock import ManualClock
from noor_daemon.state import ACCOUNTS, BILLING, LEDGER, PRIVACY

PLANS = """
[plans.free]
requests_per_minute = 2

[plans.pro]
requests_per_minute = 1000

[plans.team]
requests_per_minute = 5000
"""


def customers_for(stripe, email: str) -> list[dict]:
    return [c for c in stripe.customers.values() if c["email"] == email]


async def test_new_accounts_get_a_customer_with_email_and_account_id_only(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    store = daemon.app[ACCOUNTS]
    account = await store.create_account("new@example.com", "free")
    await eventually(lambda: customers_for(stripe, "new@example.com"))
    (customer,) = customers_for(stripe, "new@example.com")
    create = stripe.calls("POST", "/v1/customers")[0]
    assert create.params == {"email": "new@example.com", "metadata": {"noor_account_id": account.id}}
    assert create.idempotency_key == f"noor-customer-{account.id}"
    row = await eventually(lambda: daemon.app[BILLING].customer_row(account.id))
    assert row["customer_id"] == customer["id"]
    actions = await daemon.app[LEDGER].fetchall("SELECT target_id FROM audit_log WHERE action = 'billing.customer_created'")
    assert [r["target_id"] for r in actions] == [customer["id"]]

    # An email correction is sent on to Stripe.
    await store.update_account(account.id, email="renamed@example.com")
    await eventually(lambda: customer["email"] == "renamed@example.com")

    async def synced() -> bool:
        return (await daemon.app[BILLING].customer_row(account.id))["email_synced"] == 1

    await eventually(synced)


async def test_existing_accounts_are_backfilled_once(start_daemon, stripe, tmp_path):
    data = tmp_path / "backfill"
    before = await start_daemon(f'default_plan = "free"\n{SIMULATOR_CONFIG}\n{PLANS}', data_dir=data)
    emails = [f"old{i}@example.com" for i in range(5)]
    for email in emails:
        await before.app[ACCOUNTS].create_account(email, "free")
    await before.runner.cleanup()
    assert stripe.requests == []

    after = await start_daemon(billing_config(stripe), data_dir=data)
    await eventually(lambda: len(stripe.customers) == 5)
    ids = {a.email: a.id for a in await after.app[ACCOUNTS].list_accounts()}
    assert sorted(c["email"] for c in stripe.customers.values()) == emails
    assert all(c["metadata"] == {"noor_account_id": ids[c["email"]]} for c in stripe.customers.values())
    # A row only once all five are there (a row holding 0 would count as done).
    await eventually(lambda: after.app[LEDGER].fetchone("SELECT 1 WHERE (SELECT count(*) FROM billing_customers) = 5"))
    await after.runner.cleanup()

    again = await start_daemon(billing_config(stripe), data_dir=data)
    await again.app[BILLING].run_once()
    assert len(stripe.calls("POST", "/v1/customers")) == 5, "a restart creates no customer twice"


async def test_customers_wait_out_an_outage(start_daemon, stripe):
    clock = ManualClock(start=time.time())
    stripe.outage()
    daemon = await start_daemon(billing_config(stripe), clock=clock)
    await daemon.app[ACCOUNTS].create_account("patient@example.com", "free")
    await daemon.app[BILLING].run_once()
    assert stripe.customers == {} and stripe.calls("POST", "/v1/customers")
    stripe.recover()
    stripe.lose_answers(1)  # created at Stripe, answer lost: the retry's idempotency key finds the same customer
    clock.advance(31)
    await daemon.app[BILLING].run_once()
    clock.advance(61)
    await daemon.app[BILLING].run_once()
    assert len(customers_for(stripe, "patient@example.com")) == 1
    account = await daemon.app[ACCOUNTS].get_account("patient@example.com")
    assert (await daemon.app[BILLING].customer_row(account.id))["customer_id"] == next(iter(stripe.customers))


async def test_deleting_an_account_cancels_its_subscription_and_deletes_its_customer(start_daemon, stripe):
    clock = ManualClock(start=time.time())
    daemon = await start_daemon(billing_config(stripe), clock=clock)
    billing = daemon.app[BILLING]
    await daemon.create_key("leaving@example.com")
    account = await daemon.app[ACCOUNTS].get_account("leaving@example.com")
    row = await eventually(lambda: billing.customer_row(account.id))
    customer = row["customer_id"]
    sub = stripe.add_subscription(customer, PRO_PRICE)
    await post_event(daemon.url, event("customer.subscription.created", sub))
    stripe.add_invoice(customer, 1200)

    stripe.outage()  # Stripe is down when the account is erased: the deletion waits in the queue
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.delete(f"{daemon.url}/admin/v1/accounts/leaving@example.com") as r:
            assert r.status == 200
    await billing.run_once()
    queued = await daemon.app[LEDGER].fetchall("SELECT * FROM billing_deletions")
    assert [(q["customer_id"], q["subscription_id"], q["attempts"]) for q in queued] == [(customer, sub["id"], 1)]

    stripe.recover()
    clock.advance(31)
    # Due again: this pass or the daemon's own background pass (woken meanwhile) deletes the customer once.
    await billing.run_once()
    assert await daemon.app[LEDGER].fetchall("SELECT * FROM billing_deletions") == []
    assert stripe.subscriptions[sub["id"]]["status"] == "canceled"
    assert stripe.customers[customer]["deleted"] is True
    assert [r.path for r in stripe.calls("DELETE", "/v1/")][-2:] == [f"/v1/subscriptions/{sub['id']}", f"/v1/customers/{customer}"]
    assert stripe.invoices[0]["customer"] == customer, "Stripe keeps its own records"
    ledger = daemon.app[LEDGER]
    assert await ledger.fetchall("SELECT * FROM billing_deletions") == []
    for table in ("billing_customers", "billing_meter_outbox", "billing_deletions", "billing_webhook_events", "billing_state", "audit_log"):
        for row in await ledger.fetchall(f"SELECT * FROM {table}"):
            text = json.dumps([row[k] for k in row.keys()], default=str)
            assert account.id not in text and "leaving@example.com" not in text, (table, text)
    deleted = await ledger.fetchall("SELECT target_id, details FROM audit_log WHERE action = 'billing.customer_deleted'")
    assert [(d["target_id"], json.loads(d["details"])) for d in deleted] == [(customer, {"subscriptions_canceled": 1})]
    status, body = await post_event(daemon.url, event("invoice.paid", {"id": "in_late", "object": "invoice", "customer": customer, "amount_paid": 5, "currency": "usd"}))
    assert body["outcome"] == "ignored: unknown customer"


async def test_an_account_erased_while_its_customer_is_created_leaves_no_customer(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    billing = daemon.app[BILLING]
    await billing.run_once()
    account = await daemon.app[ACCOUNTS].create_account("racing@example.com", "free")
    created = asyncio.Event()
    original = billing.api.create_customer

    async def slow_create(account_id: str, email: str) -> str:
        customer_id = await original(account_id, email)
        created.set()
        await asyncio.sleep(0.2)  # the erasure commits meanwhile
        return customer_id

    billing.api.create_customer = slow_create
    pass_task = asyncio.create_task(billing.run_once())
    await created.wait()
    await daemon.app[PRIVACY].delete_account(account.id)
    await pass_task
    await billing.run_once()
    (customer,) = stripe.customers.values()
    assert customer.get("deleted") is True
    assert await daemon.app[LEDGER].fetchall("SELECT * FROM billing_customers") == []


async def test_checkout_portal_and_status_through_client_cli_and_me(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    key = await daemon.create_key("self@example.com")
    account = await daemon.app[ACCOUNTS].get_account("self@example.com")
    await eventually(lambda: daemon.app[BILLING].customer_row(account.id))
    customer = (await daemon.app[BILLING].customer_row(account.id))["customer_id"]
    stripe.add_invoice(customer, 1200)

    async with AdminClient(daemon.url, ADMIN_TOKEN) as admin:
        state = await admin.account_billing("self@example.com")
        assert isinstance(state, AccountBilling) and state.configured and state.plan == "free"
        assert state.customer_id == customer and state.invoices[0]["amount_paid"] == 1200
        assert state.links["checkout"] == f"/admin/v1/billing/accounts/{account.id}/checkout"
        assert state.meter["event_name"] == "noor_tokens"
        link = await admin.billing_checkout("self@example.com", "pro")
        assert link.url == stripe.checkout_sessions[link.id]["url"]
        portal = await admin.billing_portal("self@example.com")
        assert stripe.portal_sessions[portal.id]["customer"] == customer
        assert stripe.portal_sessions[portal.id]["return_url"].endswith("/billing/done")
        try:
            await admin.billing_checkout("self@example.com", "enterprise")
        except AdminApiError as exc:
            assert exc.status == 400 and "pro, team" in exc.message
        else:
            raise AssertionError("an unknown plan was sold")
        summary = await admin.billing_status()
        assert summary["configured"] and summary["customers"] == 1 and summary["paid_plans"]["pro"] == PRO_PRICE

    async with MeClient(daemon.url, key) as me:
        mine = await me.billing()
        assert mine.customer_id == customer and mine.meter is None and mine.links["portal"] == "/v1/me/billing/portal"
        assert (await me.billing_checkout("team")).url.startswith("https://checkout.stripe.test/")
        assert (await me.billing_portal()).url.startswith("https://billing.stripe.test/")

    env = {"NOOR_URL": daemon.url, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    runner = CliRunner()

    def noor(*args: str):
        return asyncio.to_thread(runner.invoke, cli, list(args), env=env, catch_exceptions=False)

    result = await noor("billing", "checkout", "self@example.com", "--plan", "pro")
    assert result.exit_code == 0
    url = result.stdout.strip()
    assert url.startswith("https://checkout.stripe.test/c/pay/cs_test_") and url.split("/")[-1] in stripe.checkout_sessions
    result = await noor("billing", "portal", "self@example.com")
    assert result.exit_code == 0 and result.stdout.strip().startswith("https://billing.stripe.test/p/session/")
    result = await noor("billing", "status", "self@example.com")
    assert result.exit_code == 0
    assert customer in result.stdout and "NOOR-0001" in result.stdout and "12.00 USD" in result.stdout
    assert "noor billing checkout self@example.com --plan pro | team" in result.stdout
    result = await noor("billing", "status", "self@example.com", "--json")
    assert json.loads(result.stdout)["customer_id"] == customer
    result = await noor("billing", "status")
    assert result.exit_code == 0 and "Customers  1" in result.stdout
    result = await noor("billing", "checkout", "nobody@example.com", "--plan", "pro")
    assert result.exit_code == 1 and "no account" in result.stderr

    # With a subscription, a second Checkout is refused: plan changes go through the portal.
    sub = stripe.add_subscription(customer, PRO_PRICE)
    await post_event(daemon.url, event("customer.subscription.created", sub))
    result = await noor("billing", "checkout", "self@example.com", "--plan", "team")
    assert result.exit_code == 1 and "already has a subscription" in result.stderr


async def test_stripe_unreachable_is_a_clear_502(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    await daemon.create_key("down@example.com")
    account = await daemon.app[ACCOUNTS].get_account("down@example.com")
    await eventually(lambda: daemon.app[BILLING].customer_row(account.id))
    stripe.outage()
    async with AdminClient(daemon.url, ADMIN_TOKEN) as admin:
        try:
            await admin.billing_portal("down@example.com")
        except AdminApiError as exc:
            assert (exc.status, exc.code) == (502, "stripe_unavailable") and "APIError 503" in exc.message
        else:
            raise AssertionError("no error")
        state = await admin.account_billing("down@example.com")
        assert state.invoices is None and state.invoices_error == "APIError 503"


async def test_the_cli_says_when_billing_is_not_configured(start_daemon):
    daemon = await start_daemon()
    await daemon.create_key("none@example.com")
    env = {"NOOR_URL": daemon.url, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, cli, ["billing", "checkout", "none@example.com", "--plan", "pro"], env=env)
    assert result.exit_code == 1 and "Billing is not configured" in result.stderr and "409 billing_not_configured" in result.stderr
    result = await asyncio.to_thread(runner.invoke, cli, ["billing", "status"], env=env)
    assert result.exit_code == 0 and "not configured" in result.stdout
    result = await asyncio.to_thread(runner.invoke, cli, ["billing", "status", "none@example.com"], env=env)
    assert result.exit_code == 0 and "not configured" in result.stdout and "Usage" in result.stdout


async def test_a_data_export_names_the_stripe_ids(start_daemon, stripe):
    daemon = await start_daemon(billing_config(stripe))
    await daemon.create_key("export@example.com")
    account = await daemon.app[ACCOUNTS].get_account("export@example.com")
    row = await eventually(lambda: daemon.app[BILLING].customer_row(account.id))
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.get(f"{daemon.url}/admin/v1/accounts/export@example.com/export") as r:
            exported = json.loads(await r.read())
    assert exported["billing"]["stripe_customer_id"] == row["customer_id"]
    assert exported["billing"]["subscription"] is None
