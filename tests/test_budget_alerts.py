"""Budget alerts: a mail at 50 %, 80 % and 100 % of a budget, once per period each, and a signed webhook.

Through a real SMTP server (aiosmtpd) and a real HTTP receiver on loopback. The budget is spent with real
calls through the OpenAI SDK until it refuses them; a restart of the daemon on the same data must not send
any alert again; the webhook's first delivery fails and is retried; its signature verifies with the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import openai
import pytest
from aiohttp import web
from gateway_helpers import openai_client
from privacy_helpers import SmtpServer, eventually, smtp  # noqa: F401 (a fixture)
from test_budgets import PRICED

from noor_daemon.billing.alerts import BudgetAlerts, signature
from noor_daemon.state import ACCOUNTS, BUDGET_ALERTS, LEDGER

SECRET = "whsec-budget-test-secret"
OPERATOR = "ops@example.com"


@dataclass
class Receiver:
    url: str
    bodies: list[bytes] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    fail_next: int = 1
    attempts: int = 0


@pytest.fixture
async def webhook(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    monkeypatch.setenv("NOOR_BUDGET_WEBHOOK_SECRET", SECRET)
    receiver = Receiver("")

    async def receive(request: web.Request) -> web.Response:
        receiver.attempts += 1
        if receiver.fail_next:
            receiver.fail_next -= 1
            return web.Response(status=503)
        receiver.bodies.append(await request.read())
        receiver.signatures.append(request.headers["X-Noor-Signature"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/budget", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hooks/budget"  # type: ignore[union-attr]
    yield receiver
    await runner.cleanup()


def config(smtp_server: SmtpServer, receiver: Receiver) -> str:
    return PRICED + f"""
[smtp]
host = "127.0.0.1"
port = {smtp_server.port}
security = "none"
from_address = "noor@gateway.example"
timeout = 5

[budgets]
alert_email = "{OPERATOR}"
webhook_url = "{receiver.url}"
webhook_secret = "env:NOOR_BUDGET_WEBHOOK_SECRET"
"""


def verified(body: bytes, header: str) -> bool:
    """What a receiver does: recompute the HMAC of `<t>.<body>` and compare in constant time; refuse stale ones."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


async def spend_until_refused(client: openai.AsyncOpenAI, alerts: BudgetAlerts | None = None) -> int:
    """Calls until the budget refuses one; with `alerts`, each call waits for the pass that follows it, so
    every threshold is crossed in a pass of its own."""
    for calls in range(1, 500):
        passes = alerts.passes if alerts else 0
        try:
            await client.chat.completions.create(model="sim-gpt", max_tokens=100, messages=[{"role": "user", "content": "spend"}])
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota"
            return calls
        finally:
            if alerts is not None:
                await eventually(lambda passes=passes: alerts.passes > passes, what="the pass after a call")
    raise AssertionError("the budget never refused a call")


def budget_subjects(server: SmtpServer, address: str) -> list[str]:
    return sorted(s for r in server.recorder.to(address) if "budget" in (s := str(r.message["Subject"])))


async def test_alerts_are_mailed_once_per_threshold_and_posted_signed(start_daemon, smtp, webhook, tmp_path) -> None:  # noqa: F811
    data = tmp_path / "alerts-data"
    daemon = await start_daemon(config(smtp, webhook), data_dir=data)
    key = await daemon.create_key("spender@example.com", plan="capped")
    alerts = daemon.app[BUDGET_ALERTS]
    alerts.retry_base_s = 0.2  # the webhook's first retry comes soon in a test

    calls = await spend_until_refused(openai_client(daemon, key), alerts)
    assert calls > 3

    def subjects(address: str) -> list[str]:
        return budget_subjects(smtp, address)

    await eventually(lambda: len(subjects("spender@example.com")) == 3 and len(subjects(OPERATOR)) == 3, what="6 alert mails")
    expected = sorted([
        "NoorAPI: Your account's budget is 50% used",
        "NoorAPI: Your account's budget is 80% used",
        "NoorAPI: Your account's budget is used up",
    ])
    assert subjects("spender@example.com") == expected and subjects(OPERATOR) == expected
    used_up = next(r.message for r in smtp.recorder.to("spender@example.com") if "used up" in str(r.message["Subject"]))
    text = used_up.get_body(("plain",)).get_content()
    assert "calls are refused until the budget resets" in text and "of its budget of 0.01 USD" in text

    await eventually(lambda: len(webhook.bodies) == 3, what="3 webhook deliveries")
    assert webhook.attempts == 4  # the first one failed (503) and was retried
    account = await daemon.app[ACCOUNTS].get_account("spender@example.com")
    posted = [json.loads(body) for body in webhook.bodies]
    assert sorted(p["threshold_percent"] for p in posted) == [50, 80, 100]
    assert all(p["type"] == "budget.threshold_reached" and p["scope"] == "account" and p["id"] == account.id for p in posted)
    assert all(p["budget"] == "budget_per_month" and p["limit"] == "0.01" and p["currency"] == "USD" for p in posted)
    assert all(verified(body, header) for body, header in zip(webhook.bodies, webhook.signatures, strict=True))
    assert not verified(webhook.bodies[0].replace(b"0.01", b"9.99"), webhook.signatures[0])  # tampering shows
    assert b"spender@example.com" not in b"".join(webhook.bodies)  # ids, never an email
    sent_mails, passes = len(smtp.recorder.received), alerts.passes

    # More refused calls, more passes: nothing is sent twice.
    await spend_until_refused(openai_client(daemon, key))
    alerts.wake()
    await eventually(lambda: alerts.passes > passes, what="another pass")
    assert len(smtp.recorder.received) == sent_mails

    # A restart on the same data looks at every budget again, and still sends nothing twice.
    await daemon.runner.cleanup()
    again = await start_daemon(config(smtp, webhook), data_dir=data)
    await eventually(lambda: again.app[BUDGET_ALERTS].passes >= 1, what="the pass at start")
    await spend_until_refused(openai_client(again, key))
    await eventually(lambda: again.app[BUDGET_ALERTS].passes >= 2, what="a pass after a refusal")
    assert len(smtp.recorder.received) == sent_mails and len(webhook.bodies) == 3
    rows = await again.app[LEDGER].fetchall("SELECT threshold, webhook, webhook_tries FROM budget_alerts ORDER BY threshold")
    assert [r[0] for r in rows] == [50, 80, 100] and {r[1] for r in rows} == {"sent"}
    assert sorted(r[2] for r in rows) == [1, 1, 2]  # one delivery needed a second try


async def test_a_key_budget_alerts_its_account_naming_the_key(start_daemon, smtp, webhook) -> None:  # noqa: F811
    webhook.fail_next = 0
    daemon = await start_daemon(config(smtp, webhook))
    key = await daemon.create_key("keyholder@example.com", name="laptop", limits={"budget_per_day": 0.002})
    alerts = daemon.app[BUDGET_ALERTS]
    await spend_until_refused(openai_client(daemon, key))  # quickly: thresholds may be crossed together
    await eventually(lambda: any("used up" in s for s in budget_subjects(smtp, "keyholder@example.com")), what="used up")
    rows = await daemon.app[LEDGER].fetchall("SELECT scope, threshold, webhook FROM budget_alerts ORDER BY threshold")
    assert [(r[0], r[1]) for r in rows] == [("key", 50), ("key", 80), ("key", 100)]  # every threshold recorded ...
    told = [r[1] for r in rows if r[2] != "skipped"]
    subjects = budget_subjects(smtp, "keyholder@example.com")
    assert len(subjects) == len(told) and len(set(subjects)) == len(subjects)  # ... each told at most once
    assert all(re.search(r"The key sk-noor-\w+ laptop's budget", s) for s in subjects), subjects
    await eventually(lambda: len(webhook.bodies) == len(told), what="the webhook deliveries")
    assert sorted(json.loads(b)["threshold_percent"] for b in webhook.bodies) == told
    assert {json.loads(b)["scope"] for b in webhook.bodies} == {"key"}
    assert {json.loads(b)["budget"] for b in webhook.bodies} == {"budget_per_day"}
    passes = alerts.passes
    alerts.wake()
    await eventually(lambda: alerts.passes > passes, what="another pass")
    assert len(budget_subjects(smtp, "keyholder@example.com")) == len(told)


def test_the_signature_is_the_hmac_of_timestamp_and_body() -> None:
    body = b'{"type":"budget.threshold_reached"}'
    header = signature(SECRET, 1_700_000_000, body)
    assert header == "t=1700000000,v1=" + hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
