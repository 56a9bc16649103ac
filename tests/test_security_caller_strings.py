"""Caller-set strings are validated, normalized and bounded before they are stored: emails (NUL, zero-width,
bidi, markup, look-alikes), key names, reasons and notes, and model names (the ledger and /metrics see only
configured names or `(unknown model)`). Through the real admin API, the real OpenAI SDK and /metrics."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from gateway_helpers import openai_client

from noor_daemon.domain.emails import InvalidEmail, lookalike_key, normalize
from noor_daemon.domain.names import UNKNOWN_MODEL
from noor_daemon.state import LEDGER

pytestmark = pytest.mark.engine_independent

PATTERN_CONFIG = """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-*"
routes = [{ provider = "simulator" }]
"""


@pytest.mark.parametrize(
    "bad",
    ["a\x00b@example.com", "ad\u200bmin@example.com", "admin@exam\u202eple.com", "<b>x</b>@example.com",
     "x@example.com\r\nBcc: all@example.com", "no-at-sign", "a" * 300 + "@example.com", "pa\u0443pal@example.com"],
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        normalize(bad)
    assert bad not in str(caught.value)


def test_addresses_are_normalized_and_look_alikes_fold_together() -> None:
    assert normalize("  Zoe\u0308@Example.COM ") == "Zoë@example.com"  # NFC, the domain lower-cased
    assert lookalike_key("\u0440\u0430\u0443\u0440\u0430l@example.com") == lookalike_key("PayPal@example.com")


async def test_the_admin_api_refuses_bad_and_look_alike_emails(daemon) -> None:
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async def create(email: str) -> aiohttp.ClientResponse:
            async with http.post(f"{daemon.url}/admin/v1/accounts", json={"email": email}) as r:
                await r.read()
                return r

        assert (await create("paypal@example.com")).status == 201
        for bad in ("a\x00b@example.com", "ad\u200bmin@example.com", "<script>@example.com"):
            response = await create(bad)
            assert response.status == 400, bad
        # All-Cyrillic letters that read as "paypal": the same account, refused as a duplicate.
        assert (await create("\u0440\u0430\u0443\u0440\u0430l@example.com")).status in (400, 409)
        assert (await create("PayPal@EXAMPLE.com")).status == 409
        async with http.get(f"{daemon.url}/admin/v1/accounts") as r:
            emails = [a["email"] for a in (await r.json())["data"]]
        assert emails == ["paypal@example.com"]


async def test_key_names_reasons_and_notes_are_bounded(daemon) -> None:
    await daemon.create_key("bounds@example.com")
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        for name, status in (("laptop", 201), ("x" * 201, 400), ("bad\x00name", 400), ("rtl\u202ename", 400)):
            async with http.post(f"{daemon.url}/admin/v1/keys", json={"account": "bounds@example.com", "name": name}) as r:
                assert r.status == status, (name, await r.text())
        async with http.post(f"{daemon.url}/admin/v1/privacy/requests",
                             json={"kind": "access", "account": "bounds@example.com", "note": "n" * 1001}) as r:
            assert r.status == 400


async def test_only_configured_model_names_reach_the_ledger_and_metrics(start_daemon) -> None:
    daemon = await start_daemon(PATTERN_CONFIG)
    key = await daemon.create_key("models@example.com")
    client = openai_client(daemon, key)
    await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
    await client.chat.completions.create(model="sim-anything-1.5", messages=[{"role": "user", "content": "hi"}])
    for bad in ("other-model", "sim-" + "x" * 2000, "sim-<b>", "sim-\u202ex"):
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model=bad, messages=[{"role": "user", "content": "hi"}])
    models = [r["model"] for r in await daemon.app[LEDGER].fetchall("SELECT model FROM usage_events ORDER BY id")]
    assert models == ["sim-gpt", "sim-anything-1.5"] + [UNKNOWN_MODEL] * 4
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/metrics") as r:
            text = await r.text()
    assert "x" * 100 not in text and "sim-<b>" not in text and "other-model" not in text
    assert 'model="(unknown model)"' in text
