"""Usage to Stripe's meter through the outbox: totals per account per closed hour, unique identifiers,
an outage (and lost answers, and a restart) with nothing lost and nothing counted twice.

The real `stripe` SDK talks to the stand-in (tests/stripe_standin.py); time is a ManualClock.
"""

from __future__ import annotations

import time

import pytest
from billing_helpers import billing_config, eventually, stripe  # noqa: F401 - fixture
from gateway_helpers import openai_client

from noor_daemon.clock import ManualClock
from noor_daemon.ledger.usage import HOUR_MS, UsageEvent
from noor_daemon.state import ACCOUNTS, BILLING, LEDGER

DELAY = 120  # meter_delay_seconds in these tests


def hour_clock() -> ManualClock:
    """Ten minutes into the current real hour (Stripe takes events up to 35 days old, so stay near now)."""
    now = time.time()
    return ManualClock(start=now - now % 3600 + 600)


async def call(daemon, key: str, n: int = 1, words: str = "count these words please") -> None:
    client = openai_client(daemon, key)
    for _ in range(n):
        await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": words}], max_tokens=8)
    await client.close()


async def tokens_by_account(daemon, start_ms: int, end_ms: int) -> dict[str, int]:
    rows = await daemon.app[LEDGER].fetchall(
        """SELECT account_id, sum(prompt_tokens + completion_tokens) AS t FROM usage_events
           WHERE ts >= ? AND ts < ? GROUP BY account_id""",
        (start_ms, end_ms),
    )
    return {r["account_id"]: r["t"] for r in rows}


async def customer_of(daemon, email: str) -> str:
    account = await daemon.app[ACCOUNTS].get_account(email)
    row = await eventually(lambda: daemon.app[BILLING].customer_row(account.id))
    return row["customer_id"]


async def outbox(daemon) -> list[dict]:
    return [dict(r) for r in await daemon.app[LEDGER].fetchall("SELECT * FROM billing_meter_outbox ORDER BY id")]


def config(stripe) -> str:
    return billing_config(stripe, billing_extra=f"meter_delay_seconds = {DELAY}")


async def test_closed_hours_are_reported_per_account_with_unique_identifiers(start_daemon, stripe):
    clock = hour_clock()
    daemon = await start_daemon(config(stripe), clock=clock)
    billing = daemon.app[BILLING]
    alice = await daemon.create_key("alice@example.com", plan="pro")
    bob = await daemon.create_key("bob@example.com", plan="pro")
    await call(daemon, alice, 3)
    await call(daemon, bob, 2, words="a much longer prompt with many more words in it than alice sent")
    hour = int(clock.now() * 1000) - int(clock.now() * 1000) % HOUR_MS
    first_hour = await tokens_by_account(daemon, hour, hour + HOUR_MS)

    await billing.run_once()
    assert stripe.meter_events == {}, "an open hour is never reported"
    clock.advance(3000 + DELAY - 60)  # the hour ended, but less than the delay ago
    await billing.run_once()
    assert stripe.meter_events == {}

    clock.advance(61)
    await call(daemon, alice, 1)  # the next hour: not reported yet
    results = await billing.run_once()
    assert results["meter_queued"] == 2 and results["meter_sent"] == 2
    alice_cus, bob_cus = await customer_of(daemon, "alice@example.com"), await customer_of(daemon, "bob@example.com")
    account_of = {alice_cus: (await daemon.app[ACCOUNTS].get_account("alice@example.com")).id,
                  bob_cus: (await daemon.app[ACCOUNTS].get_account("bob@example.com")).id}
    assert {c: stripe.meter_total(c) for c in (alice_cus, bob_cus)} == {c: first_hour[account_of[c]] for c in (alice_cus, bob_cus)}
    for sent in stripe.meter_events.values():
        assert sent["event_name"] == "noor_tokens"
        assert hour // 1000 <= sent["timestamp"] < (hour + HOUR_MS) // 1000  # inside the hour it measures
    assert len(stripe.meter_posts) == len(stripe.meter_events) == 2

    # Another pass sends nothing again; the next hour is reported once it closes.
    assert (await billing.run_once())["meter_sent"] == 0
    clock.advance(3600)
    await billing.run_once()
    second_hour = await tokens_by_account(daemon, hour + HOUR_MS, hour + 2 * HOUR_MS)
    assert stripe.meter_total(alice_cus) == first_hour[account_of[alice_cus]] + second_hour[account_of[alice_cus]]
    identifiers = [e["identifier"] for e in stripe.meter_posts]
    assert len(identifiers) == len(set(identifiers)) == 3
    assert all(r["status"] == "sent" for r in await outbox(daemon))


async def test_a_call_committed_after_its_hour_was_reported_is_sent_as_the_difference(start_daemon, stripe):
    clock = hour_clock()
    daemon = await start_daemon(config(stripe), clock=clock)
    billing = daemon.app[BILLING]
    key = await daemon.create_key("late@example.com", plan="pro")
    await call(daemon, key, 2)
    started = int(clock.now() * 1000)
    clock.advance(3600 + DELAY)
    await billing.run_once()
    customer = await customer_of(daemon, "late@example.com")
    before = stripe.meter_total(customer)
    assert before > 0

    # A long stream that began in the reported hour is committed only now.
    account = await daemon.app[ACCOUNTS].get_account("late@example.com")
    await daemon.app[LEDGER].record(
        UsageEvent(ts=started + 1000, model="sim-gpt", endpoint="chat/completions", status=200, latency_ms=900_000.0,
                   account_id=account.id, key_id=None, provider="simulator", prompt_tokens=70, completion_tokens=30)
    )
    await billing.run_once()
    assert stripe.meter_total(customer) == before + 100
    rows = await outbox(daemon)
    assert [(r["seq"], r["value"]) for r in rows] == [(1, before), (2, 100)]
    assert len({r["identifier"] for r in rows}) == 2


async def test_an_outage_and_lost_answers_lose_nothing_and_count_nothing_twice(start_daemon, stripe):
    clock = hour_clock()
    daemon = await start_daemon(config(stripe), clock=clock)
    billing = daemon.app[BILLING]
    keys = {email: await daemon.create_key(email, plan="pro") for email in ("a@example.com", "b@example.com", "c@example.com")}
    await eventually(lambda: len(stripe.customers) == 3)
    for n, key in enumerate(keys.values(), start=1):
        await call(daemon, key, n)
    hour = int(clock.now() * 1000) - int(clock.now() * 1000) % HOUR_MS
    expected = await tokens_by_account(daemon, hour, hour + HOUR_MS)

    stripe.outage()  # Stripe is down when the hour closes
    clock.advance(3600 + DELAY)
    await billing.run_once()
    rows = await outbox(daemon)
    assert len(rows) == 3 and all(r["status"] == "pending" for r in rows)
    assert sum(r["attempts"] for r in rows) == 1, "the pass stops at the first unreachable answer"
    assert rows[0]["last_error"] == "APIError 503"
    assert stripe.meter_events == {}

    # Each pass tries one more row (a row never tried is due) until all have failed once; then the
    # retries back off: nothing is tried again before its next attempt is due.
    await billing.run_once()
    await billing.run_once()
    assert [r["attempts"] for r in await outbox(daemon)] == [1, 1, 1]
    posts = len(stripe.requests)
    await billing.run_once()
    assert len(stripe.requests) == posts

    # Stripe comes back, but the first answer is lost on the way: Stripe has the event, the daemon does not know.
    stripe.recover()
    stripe.lose_answers(1)
    clock.advance(31)
    await billing.run_once()
    clock.advance(61)  # the lost one's retry (second failure: 60 s)
    await billing.run_once()

    rows = await outbox(daemon)
    assert all(r["status"] == "sent" for r in rows)
    posted = [e["identifier"] for e in stripe.meter_posts]
    assert len(posted) == 4 and len(set(posted)) == 3, "the lost one was sent again with the same identifier"
    accounts = {a.email: a.id for a in await daemon.app[ACCOUNTS].list_accounts()}
    for email in keys:
        customer = await customer_of(daemon, email)
        assert stripe.meter_total(customer) == expected[accounts[email]]


async def test_a_restart_during_an_outage_sends_everything_once(start_daemon, stripe, tmp_path):
    clock = hour_clock()
    data = tmp_path / "restart-data"
    first = await start_daemon(config(stripe), clock=clock, data_dir=data)
    key = await first.create_key("restart@example.com", plan="pro")
    await eventually(lambda: len(stripe.customers) == 1)
    await call(first, key, 4)
    hour = int(clock.now() * 1000) - int(clock.now() * 1000) % HOUR_MS
    expected = sum((await tokens_by_account(first, hour, hour + HOUR_MS)).values())
    stripe.outage()
    clock.advance(3600 + DELAY)
    await first.app[BILLING].run_once()
    assert [r["status"] for r in await outbox(first)] == ["pending"]
    await first.runner.cleanup()

    stripe.recover()
    stripe.lose_answers(1)  # and the first answer after the restart is lost too
    second = await start_daemon(config(stripe), clock=clock, data_dir=data)
    billing = second.app[BILLING]
    clock.advance(31)
    await billing.run_once()
    clock.advance(3600)
    await billing.run_once()
    customer = next(iter(stripe.customers))
    assert stripe.meter_total(customer) == expected
    assert len(stripe.meter_events) == 1
    assert [r["status"] for r in await outbox(second)] == ["sent"]
    assert len(stripe.customers) == 1, "the restart did not create the customer again"


async def test_a_refused_event_is_given_up_after_a_day_and_audited(start_daemon, stripe):
    clock = hour_clock()
    daemon = await start_daemon(config(stripe), clock=clock)
    billing = daemon.app[BILLING]
    key = await daemon.create_key("gone@example.com", plan="pro")
    await call(daemon, key, 1)
    customer = await customer_of(daemon, "gone@example.com")
    stripe.customers[customer]["deleted"] = True  # deleted in Stripe's dashboard: meter events are refused (400)
    clock.advance(3600 + DELAY)
    for _ in range(5):
        await billing.run_once()
        clock.advance(3600)
    rows = await outbox(daemon)
    assert rows[0]["status"] == "pending", "a refusal is tried for a day first (time to fix a misconfigured meter)"
    clock.advance(20 * 3600)
    await billing.run_once()
    rows = await outbox(daemon)
    assert rows[0]["status"] == "failed" and rows[0]["attempts"] == 6
    assert rows[0]["last_error"] == "InvalidRequestError 400 resource_missing"
    audit = await daemon.app[LEDGER].fetchall("SELECT action, details FROM audit_log WHERE action = 'billing.meter_failed'")
    assert len(audit) == 1


async def test_the_request_path_never_waits_on_stripe(start_daemon, stripe):
    """Stripe down for the whole test: calls are answered and metered as usual."""
    stripe.outage()
    daemon = await start_daemon(config(stripe), clock=hour_clock())
    key = await daemon.create_key("busy@example.com", plan="pro")
    started = time.monotonic()
    await call(daemon, key, 5)
    assert time.monotonic() - started < 5
    assert len(await daemon.usage_rows()) == 5


@pytest.mark.parametrize("value", ["requests"])
async def test_the_meter_can_count_requests(start_daemon, stripe, value):
    clock = hour_clock()
    daemon = await start_daemon(billing_config(stripe, billing_extra=f'meter_value = "{value}"\nmeter_delay_seconds = 0'), clock=clock)
    key = await daemon.create_key("req@example.com", plan="pro")
    await call(daemon, key, 3)
    clock.advance(3600)
    await daemon.app[BILLING].run_once()
    assert stripe.meter_total(await customer_of(daemon, "req@example.com")) == 3


async def test_the_meter_can_report_cost_in_cents(start_daemon, stripe):
    """`meter_value = "cost"`: each closed hour sends the whole cents of its exact cost, and a late call
    sends only the cents the hour owes on top of what was sent (the hour's cost is summed exactly first)."""
    clock = hour_clock()
    prices = '[prices."sim-gpt"]\ninput_per_million = 1000\noutput_per_million = 4000\n'
    daemon = await start_daemon(
        billing_config(stripe, extra=prices, billing_extra=f'meter_value = "cost"\nmeter_delay_seconds = {DELAY}'), clock=clock
    )
    key = await daemon.create_key("cents@example.com", plan="pro")
    await call(daemon, key, 3)
    hour = int(clock.now() * 1000) // HOUR_MS * HOUR_MS

    async def cost_in_hour() -> int:
        row = await daemon.app[LEDGER].fetchone("SELECT sum(cost) FROM usage_events WHERE ts >= ? AND ts < ?", (hour, hour + HOUR_MS))
        return int(row[0])

    first = await cost_in_hour()
    assert first > 10**10  # more than a cent: the prices make it so
    clock.advance(3600 - 600 + DELAY + 1)  # the hour has closed and its delay has passed
    await daemon.app[BILLING].run_once()
    customer = await customer_of(daemon, "cents@example.com")
    assert stripe.meter_total(customer) == first // 10**10  # picounits → whole cents, rounded down

    # A call of that hour committed late (it was running when the hour closed): only the difference goes.
    late = UsageEvent(ts=hour + 1000, model="sim-gpt", endpoint="chat/completions", status=200, latency_ms=5.0,
                      account_id=(await daemon.app[ACCOUNTS].get_account("cents@example.com")).id,
                      provider="sim", prompt_tokens=5000, completion_tokens=2000, cost=5000 * 10**9 + 2000 * 4 * 10**9)
    await daemon.app[LEDGER].record(late)
    await daemon.app[BILLING].run_once()
    assert stripe.meter_total(customer) == (first + late.cost) // 10**10
