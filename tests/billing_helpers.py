"""Helpers for the billing tests: the Stripe stand-in as a fixture, a billing config, events signed as Stripe signs them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from conftest import SIMULATOR_CONFIG
from stripe_standin import SECRET_KEY, StripeStandIn

WEBHOOK_SECRET = "whsec_standin_test_secret"
SECRET_ENV = "NOOR_TEST_STRIPE_KEY"
WEBHOOK_ENV = "NOOR_TEST_STRIPE_WEBHOOK"
PRO_PRICE = "price_pro_monthly"
TEAM_PRICE = "price_team_monthly"
USAGE_PRICE = "price_tokens_metered"

_event_ids = itertools.count(1)


@pytest.fixture
async def stripe(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StripeStandIn]:
    """The stand-in of Stripe's API on loopback; the daemon's [billing] secrets point at it through env: references."""
    monkeypatch.setenv(SECRET_ENV, SECRET_KEY)
    monkeypatch.setenv(WEBHOOK_ENV, WEBHOOK_SECRET)
    server = await StripeStandIn().start()
    yield server
    await server.stop()


def billing_config(stripe: StripeStandIn, *, extra: str = "", billing_extra: str = "", plans: str | None = None) -> str:
    """The simulator config with a free plan (2 requests a minute), a pro and a team plan, and [billing] at the stand-in."""
    plans = plans if plans is not None else """
[plans.free]
requests_per_minute = 2

[plans.pro]
requests_per_minute = 1000

[plans.team]
requests_per_minute = 5000
"""
    return f"""default_plan = "free"
{SIMULATOR_CONFIG}
{extra}
{plans}
[billing]
secret_key = "env:{SECRET_ENV}"
webhook_secret = "env:{WEBHOOK_ENV}"
meter_event_name = "noor_tokens"
api_base = "{stripe.url}"
usage_price = "{USAGE_PRICE}"
grace_days = 3
{billing_extra}

[billing.prices]
pro = "{PRO_PRICE}"
team = "{TEAM_PRICE}"
"""


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """`Stripe-Signature` exactly as Stripe computes it: t=<unix seconds>,v1=HMAC-SHA256(secret, "<t>.<payload>") in hex."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event(kind: str, obj: dict[str, Any], *, created: int | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A Stripe event envelope (API object `event`) around `obj`."""
    return {
        "id": event_id or f"evt_test_{next(_event_ids):08d}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created if created is not None else int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }


async def post_event(
    url: str, payload: dict | str, *, signature: str | None | Callable[[str], str] = sign, headers: dict | None = None
) -> tuple[int, dict]:
    """POST an event to the daemon's /stripe/webhook, signed like Stripe unless told otherwise."""
    body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    sent = dict(headers or {})
    sent["Content-Type"] = "application/json; charset=utf-8"
    if callable(signature):
        sent["Stripe-Signature"] = signature(body)
    elif signature is not None:
        sent["Stripe-Signature"] = signature
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/stripe/webhook", data=body.encode(), headers=sent) as response:
            return response.status, await response.json(content_type=None)


async def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Wait until `check()` (sync or async) returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
