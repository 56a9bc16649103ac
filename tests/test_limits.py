"""Rate limits, concurrency, period quotas and their headers, through the real SDKs.

Time is a ManualClock shared by the daemon and the test: no sleeps wait for a reset.
"""

from __future__ import annotations

import asyncio

import aiohttp
import anthropic
import openai
import pytest

from noor_daemon.state import ACCOUNTS, LIMITER
from tests.conftest import SIMULATOR_CONFIG, Daemon

MESSAGES = [{"role": "user", "content": "hello"}]


def plan_config(extra: str, latency_scale: float = 0) -> str:
    base = SIMULATOR_CONFIG.replace("latency_scale = 0", f"latency_scale = {latency_scale}")
    return base + "\n[plans.free]\n" + extra


def sdk(daemon: Daemon, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=daemon.base_url, max_retries=0)


async def chat(client: openai.AsyncOpenAI, **options):
    return await client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MESSAGES, **options)


async def test_request_burst_allows_exactly_the_limit_then_recovers(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_minute = 5"), clock=manual_clock)
    client = sdk(daemon, await daemon.create_key())

    outcomes = await asyncio.gather(*(chat(client) for _ in range(8)), return_exceptions=True)

    successes = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(successes) == 5 and len(refused) == 3
    for error in refused:
        assert int(error.response.headers["retry-after"]) >= 1
        assert error.body["code"] == "rate_limit_exceeded"
        assert error.response.headers["x-ratelimit-remaining-requests"] == "0"

    wait = max(int(e.response.headers["retry-after"]) for e in refused)
    manual_clock.advance(wait)
    assert (await chat(client)).http_response.status_code == 200

    rows = await daemon.usage_rows()
    assert sorted(r["status"] for r in rows) == [200] * 6 + [429] * 3
    assert all(r["prompt_tokens"] == r["completion_tokens"] == 0 for r in rows if r["status"] == 429)


async def test_no_fixed_window_burst_at_a_boundary(start_daemon, manual_clock):
    """Spending the limit at the end of one minute leaves nothing at the start of the next."""
    daemon = await start_daemon(plan_config("requests_per_minute = 6"), clock=manual_clock)
    client = sdk(daemon, await daemon.create_key())
    manual_clock.advance(59 - manual_clock.now() % 60)
    for _ in range(6):
        await chat(client)
    manual_clock.advance(2)  # a new minute has begun
    with pytest.raises(openai.RateLimitError):
        await chat(client)
    manual_clock.advance(10)  # one interval (60s / 6) refills one request
    assert (await chat(client)).http_response.status_code == 200


async def test_headers_count_down_on_every_response(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_minute = 10\ntokens_per_minute = 10000"), clock=manual_clock)
    client = sdk(daemon, await daemon.create_key())
    remaining_requests, remaining_tokens = [], []
    for _ in range(4):
        response = await chat(client, max_tokens=50)
        headers = response.headers
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-limit-tokens"] == "10000"
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        remaining_requests.append(int(headers["x-ratelimit-remaining-requests"]))
        remaining_tokens.append(int(headers["x-ratelimit-remaining-tokens"]))
    assert remaining_requests == [9, 8, 7, 6]
    assert remaining_tokens == sorted(remaining_tokens, reverse=True) and len(set(remaining_tokens)) == 4

    # streaming responses carry them too
    stream = await client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MESSAGES, stream=True)
    assert stream.headers["x-ratelimit-remaining-requests"] == "5"
    async for _ in stream.parse():
        pass


async def test_token_rate_is_charged_by_estimate_and_corrected(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("tokens_per_minute = 300"), clock=manual_clock)
    client = sdk(daemon, await daemon.create_key())
    # The estimate reserves max_tokens; the simulator answers with far fewer, and the refund shows.
    first = await chat(client, max_tokens=200)
    usage = first.parse().usage
    remaining = int(first.headers["x-ratelimit-remaining-tokens"])
    assert remaining < 300 - 200  # charged the estimate up front
    second = await chat(client, max_tokens=10)
    after_refund = int(second.headers["x-ratelimit-remaining-tokens"])
    assert after_refund > remaining  # the first call's unused room came back
    assert usage.total_tokens < 200

    outcomes = await asyncio.gather(*(chat(client, max_tokens=150) for _ in range(4)), return_exceptions=True)
    assert any(isinstance(o, openai.RateLimitError) for o in outcomes)
    manual_clock.advance(60)
    assert (await chat(client, max_tokens=150)).http_response.status_code == 200


async def test_concurrency_limit_and_slots_released_on_every_exit(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("concurrent_requests = 2", latency_scale=1.0), clock=manual_clock)
    key = await daemon.create_key()
    client = sdk(daemon, key)
    outcomes = await asyncio.gather(*(chat(client) for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 2
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(refused) == 3 and refused[0].body["code"] == "concurrency_limit_exceeded"

    limiter = daemon.app[LIMITER]
    account_id = (await daemon.app[ACCOUNTS].get_account("dev@example.com")).id
    assert limiter.in_flight("account", account_id) == 0

    # A client that walks away mid-stream still gives its slot back.
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{daemon.base_url}/chat/completions",
            json={"model": "sim-gpt", "messages": MESSAGES, "stream": True},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            await response.content.readline()
    for _ in range(200):
        if limiter.in_flight("account", account_id) == 0:
            break
        await asyncio.sleep(0.02)
    assert limiter.in_flight("account", account_id) == 0
    assert (await chat(client)).http_response.status_code == 200


async def test_period_quota_gives_insufficient_quota_with_reset(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_day = 2"), clock=manual_clock)
    client = sdk(daemon, await daemon.create_key())
    await chat(client)
    await chat(client)
    with pytest.raises(openai.RateLimitError) as refused:
        await chat(client)
    assert refused.value.body["code"] == "insufficient_quota"
    assert refused.value.body["type"] == "insufficient_quota"
    assert "resets at" in refused.value.body["message"]
    assert int(refused.value.response.headers["retry-after"]) <= 86400

    manual_clock.advance(86400)
    assert (await chat(client)).http_response.status_code == 200


async def test_anthropic_sdk_gets_rate_limit_error_and_its_headers(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_minute = 2\ntokens_per_minute = 5000"), clock=manual_clock)
    client = anthropic.AsyncAnthropic(api_key=await daemon.create_key(), base_url=daemon.url, max_retries=0)
    first = await client.messages.with_raw_response.create(model="sim-claude", max_tokens=20, messages=MESSAGES)
    assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert first.headers["anthropic-ratelimit-tokens-limit"] == "5000"
    assert first.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert "x-ratelimit-limit-requests" not in first.headers
    await client.messages.create(model="sim-claude", max_tokens=20, messages=MESSAGES)
    with pytest.raises(anthropic.RateLimitError) as refused:
        await client.messages.create(model="sim-claude", max_tokens=20, messages=MESSAGES)
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert int(refused.value.response.headers["retry-after"]) >= 1


async def test_restart_keeps_period_usage_exact(start_daemon, manual_clock, tmp_path):
    config = plan_config("tokens_per_day = 100000\nrequests_per_day = 4")
    data_dir = tmp_path / "shared-data"
    first = await start_daemon(config, clock=manual_clock, data_dir=data_dir)
    key = await first.create_key()
    used_tokens = 0
    for _ in range(3):
        used_tokens += (await chat(sdk(first, key))).parse().usage.total_tokens
    await first.runner.cleanup()

    second = await start_daemon(config, clock=manual_clock, data_dir=data_dir)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{second.base_url}/me/quota", headers={"Authorization": f"Bearer {key}"}) as response:
            report = await response.json()
    by_limit = {row["limit"]: row for row in report["limits"]}
    assert by_limit["requests_per_day"]["used"] == 3
    assert by_limit["tokens_per_day"]["used"] == used_tokens
    assert by_limit["requests_per_day"]["remaining"] == 1
    assert by_limit["requests_per_day"]["resets_at"].endswith("T00:00:00Z")

    await chat(sdk(second, key))
    with pytest.raises(openai.RateLimitError):
        await chat(sdk(second, key))


async def test_hundreds_of_concurrent_requests_never_exceed_the_limit(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_minute = 50\nconcurrent_requests = 400"), clock=manual_clock)
    key = await daemon.create_key()
    body = {"model": "sim-gpt", "messages": MESSAGES}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> int:
            async with session.post(
                f"{daemon.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            ) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one() for _ in range(300)))
    assert statuses.count(200) == 50
    assert statuses.count(429) == 250


async def test_key_overrides_are_tighter_than_the_plan(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_minute = 100"), clock=manual_clock)
    tight = sdk(daemon, await daemon.create_key(limits={"requests_per_minute": 2}))
    loose = sdk(daemon, await daemon.create_key())
    await chat(tight)
    await chat(tight)
    with pytest.raises(openai.RateLimitError):
        await chat(tight)
    assert (await chat(loose)).headers["x-ratelimit-limit-requests"] == "100"


async def test_limits_through_admin_api_and_quota_status(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_minute = 100\ntokens_per_month = 1000000"), clock=manual_clock)
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as admin:
        async with admin.post(f"{daemon.url}/admin/v1/accounts", json={"email": "q@example.com"}) as r:
            assert r.status == 201
        async with admin.post(
            f"{daemon.url}/admin/v1/keys",
            json={"account": "q@example.com", "limits": {"requests_per_minute": 3, "concurrent_requests": 1}},
        ) as r:
            issued = await r.json()
            assert issued["limits"] == {"requests_per_minute": 3, "concurrent_requests": 1}
        async with admin.post(f"{daemon.url}/admin/v1/keys", json={"account": "q@example.com", "limits": {"bogus": 1}}) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"
        await chat(sdk(daemon, issued["key"]))
        async with admin.get(f"{daemon.url}/admin/v1/accounts/q@example.com/quota") as r:
            report = await r.json()
        account_rows = {row["limit"]: row for row in report["limits"]}
        assert account_rows["requests_per_minute"]["used"] == 1
        assert account_rows["tokens_per_month"]["used"] > 0
        assert account_rows["tokens_per_month"]["resets_at"].endswith("-01T00:00:00Z")
        key_rows = {row["limit"]: row for row in report["keys"][0]["limits"]}
        assert key_rows["requests_per_minute"] == {**key_rows["requests_per_minute"], "value": 3, "used": 1, "remaining": 2}

        async with admin.patch(f"{daemon.url}/admin/v1/keys/{issued['id']}", json={"limits": {"requests_per_minute": 1}}) as r:
            assert r.status == 200
    with pytest.raises(openai.RateLimitError):
        await chat(sdk(daemon, issued["key"]))


async def test_a_deleted_account_leaves_no_counts_behind(start_daemon, manual_clock):
    daemon = await start_daemon(plan_config("requests_per_minute = 5\nrequests_per_day = 100"), clock=manual_clock)
    client = sdk(daemon, await daemon.create_key("gone@example.com"))
    await chat(client)
    account = await daemon.app[ACCOUNTS].get_account("gone@example.com")
    limiter = daemon.app[LIMITER]
    assert limiter.counters.used("account", account.id, "day") != (0, 0)
    await daemon.app[ACCOUNTS].delete_account(account.id)
    assert limiter.counters.used("account", account.id, "day") == (0, 0)
    assert not any(slot[1] == account.id for slot in limiter._tat)  # noqa: SLF001


async def test_a_plan_change_or_a_new_config_applies_to_the_next_call(start_daemon, manual_clock):
    """The limiter keeps each account's scope between calls; a plan change or a reloaded config replaces it."""
    from noor_daemon import config as config_module

    text = plan_config("requests_per_minute = 1") + "\n[plans.pro]\nrequests_per_minute = 100\n"
    daemon = await start_daemon(text, clock=manual_clock)
    client = sdk(daemon, await daemon.create_key("plans@example.com"))
    assert (await chat(client)).http_response.status_code == 200
    with pytest.raises(openai.RateLimitError):
        await chat(client)
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as admin:
        async with admin.patch(f"{daemon.url}/admin/v1/accounts/plans@example.com", json={"plan": "pro"}) as r:
            assert r.status == 200
    assert (await chat(client)).http_response.status_code == 200
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as admin:
        async with admin.patch(f"{daemon.url}/admin/v1/accounts/plans@example.com", json={"plan": "free"}) as r:
            assert r.status == 200
    with pytest.raises(openai.RateLimitError):
        await chat(client)
    # A reload (what `reload.py` does to the limiter): the free plan loosened takes effect at once.
    loosened = plan_config("requests_per_minute = 50") + "\n[plans.pro]\nrequests_per_minute = 100\n"
    daemon.app[LIMITER].config = config_module.parse(loosened, "reloaded.toml")
    assert (await chat(client)).http_response.status_code == 200
