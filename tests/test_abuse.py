"""Abuse detection and suspensions: bad-key floods, spikes, suspended keys and accounts."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from noor_daemon.state import AUDIT
from tests.conftest import SIMULATOR_CONFIG

pytestmark = pytest.mark.engine_independent

MESSAGES = [{"role": "user", "content": "hello"}]
BAD_KEY = "sk-noor-" + "A" * 49


def abuse_config(**settings: object) -> str:
    lines = "\n".join(f"{name} = {str(value).lower() if isinstance(value, bool) else value}" for name, value in settings.items())
    return SIMULATOR_CONFIG + "\n[abuse]\n" + lines + "\n"


async def post_chat(session: aiohttp.ClientSession, url: str, key: str) -> aiohttp.ClientResponse:
    async with session.post(
        f"{url}/v1/chat/completions", json={"model": "sim-gpt", "messages": MESSAGES}, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        await response.read()
        return response


async def test_bad_key_flood_cools_the_address_off(start_daemon, manual_clock):
    daemon = await start_daemon(
        abuse_config(exempt_loopback=False, auth_failure_threshold=5, cooloff_seconds=120), clock=manual_clock
    )
    good = await daemon.create_key()
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            assert (await post_chat(session, daemon.url, BAD_KEY)).status == 401
        blocked = await post_chat(session, daemon.url, good)
        assert blocked.status == 429 and int(blocked.headers["retry-after"]) == 120
        manual_clock.advance(121)
        assert (await post_chat(session, daemon.url, good)).status == 200
        async with session.get(f"{daemon.url}/admin/v1/abuse", headers=daemon.admin_headers) as response:
            report = await response.json()
    assert [f["action"] for f in report["flags"]] == ["abuse.address_blocked"]
    assert report["flags"][0]["target_id"] == "127.0.0.1"


async def test_loopback_is_exempt_by_default(daemon):
    good = await daemon.create_key()
    async with aiohttp.ClientSession() as session:
        for _ in range(40):
            assert (await post_chat(session, daemon.url, BAD_KEY)).status == 401
        assert (await post_chat(session, daemon.url, good)).status == 200


async def test_a_spike_above_the_keys_baseline_is_flagged_once(start_daemon, manual_clock):
    daemon = await start_daemon(abuse_config(spike_min_requests=5, spike_factor=3), clock=manual_clock)
    key = await daemon.create_key()
    async with aiohttp.ClientSession() as session:
        for _ in range(5):  # a calm baseline: a few requests a minute
            for _ in range(2):
                assert (await post_chat(session, daemon.url, key)).status == 200
            manual_clock.advance(60)
        for _ in range(12):  # then a burst
            assert (await post_chat(session, daemon.url, key)).status == 200
    await daemon.app[AUDIT].drain()
    flags = await daemon.app[AUDIT].entries(action="abuse.spike_flagged")
    assert len(flags) == 1
    assert flags[0]["details"]["requests_this_minute"] == 6
    assert flags[0]["target_type"] == "key"


async def test_suspension_is_immediate_clear_and_audited(daemon):
    key = await daemon.create_key("s@example.com")
    client = openai.AsyncOpenAI(api_key=key, base_url=daemon.base_url, max_retries=0)
    api = f"{daemon.url}/admin/v1"
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as admin:
        async with admin.get(f"{api}/keys", params={"account": "s@example.com"}) as r:
            key_id = (await r.json())["data"][0]["id"]

        async with admin.post(f"{api}/keys/{key_id}/suspend", json={"reason": "leaked in a gist"}) as r:
            assert (await r.json())["state"] == "suspended"
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="sim-gpt", messages=MESSAGES)
        assert refused.value.body["code"] == "key_suspended"
        async with admin.post(f"{api}/keys/{key_id}/unsuspend") as r:
            assert (await r.json())["state"] == "active"
        await client.chat.completions.create(model="sim-gpt", messages=MESSAGES)

        async with admin.post(f"{api}/accounts/s@example.com/suspend") as r:
            assert (await r.json())["status"] == "suspended"
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="sim-gpt", messages=MESSAGES)
        assert refused.value.body["code"] == "account_suspended"
        async with admin.post(f"{api}/accounts/s@example.com/unsuspend") as r:
            assert (await r.json())["status"] == "active"
        await client.chat.completions.create(model="sim-gpt", messages=MESSAGES)

    actions = [e["action"] for e in await daemon.app[AUDIT].entries()]
    for expected in ("key.suspended", "key.unsuspended", "account.suspended", "account.unsuspended"):
        assert expected in actions
    suspended = next(e for e in await daemon.app[AUDIT].entries(action="key.suspended"))
    assert suspended["details"]["reason"] == "leaked in a gist"
    rows = await daemon.usage_rows()
    assert [r["status"] for r in rows] == [403, 200, 403, 200]
