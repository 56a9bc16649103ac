"""Three `noor daemon` processes on different ports, one PostgreSQL and one Redis between them.

What a team behind a load balancer relies on: one limit for all daemons together, a revocation
on one refused by the others within a second, and a ledger whose totals are what clients saw.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import openai
import pg_helpers
import pytest
import redis.asyncio as redis_asyncio
from daemon_process import DaemonProcesses
from gateway_helpers import openai_client

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 10  # per minute: a refill every 6 s, far longer than the burst takes


def scale_out_config(database_url: str) -> str:
    return f"""
default_plan = "team"

[storage]
url = "{database_url}"

[limits]
redis_url = "{REDIS_URL}"

[plans.team]
requests_per_minute = {LIMIT}

[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{{ provider = "simulator", model = "sim-gpt" }}]
"""


@pytest.fixture
async def three_daemons(tmp_path):
    try:
        client = redis_asyncio.from_url(REDIS_URL)
        await client.ping()
        await client.aclose()
    except Exception as exc:  # pragma: no cover - CI has the server
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})")
    async with pg_helpers.fresh_database() as url:
        processes = DaemonProcesses(tmp_path)
        try:
            config = scale_out_config(url)
            daemons = [await processes.start(config, data_dir=tmp_path / f"data{i}", name=f"d{i}") for i in range(3)]
            yield daemons, url
        finally:
            await processes.close()


async def chat(daemon, key: str) -> tuple[int, int]:
    """(status, total tokens) of one call through the real OpenAI SDK."""
    async with openai_client(daemon, key) as client:  # no retries: a 429 is an answer here
        try:
            answer = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError as error:
            return error.status_code, 0
        return 200, answer.usage.total_tokens


async def until_refused(daemon, key: str, deadline: float) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{daemon.url}/v1/models", headers={"Authorization": f"Bearer {key}"}) as r:
                if r.status == 401:
                    return time.monotonic() - started
            assert time.monotonic() - started < deadline, f"{daemon.url} still accepts the revoked key"
            await asyncio.sleep(0.02)


async def test_three_daemons_share_one_limit_one_ledger_and_revocations(three_daemons):
    daemons, database_url = three_daemons
    key = await daemons[0].create_key("team@example.com")

    # A key made on one daemon is known to the others (the change feed), well within a second.
    async with aiohttp.ClientSession() as http:
        for daemon in daemons[1:]:
            started = time.monotonic()
            while True:
                async with http.get(f"{daemon.url}/v1/models", headers={"Authorization": f"Bearer {key}"}) as r:
                    if r.status == 200:
                        break
                assert time.monotonic() - started < 1.0, "a new key did not reach every daemon within a second"
                await asyncio.sleep(0.02)

    # A burst of 6x the limit, spread over the three daemons at once: exactly the limit gets through.
    calls = 6 * LIMIT
    results = await asyncio.gather(*(chat(daemons[i % 3], key) for i in range(calls)))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == calls - LIMIT, statuses

    # The shared ledger holds every call, and its tokens are the tokens clients were told about.
    conn = await asyncpg.connect(database_url)
    try:
        rows, ok, tokens = await conn.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE status = 200), coalesce(sum(prompt_tokens + completion_tokens), 0)"
            " FROM usage_events"
        )
        hourly = await conn.fetchval("SELECT sum(requests) FROM usage_hourly")
    finally:
        await conn.close()
    assert (rows, ok, tokens) == (calls, LIMIT, sum(t for _, t in results))
    assert hourly == calls

    # Revoked on one daemon, refused by the other two within a second.
    async with aiohttp.ClientSession(headers=daemons[0].admin_headers) as http:
        async with http.get(f"{daemons[0].url}/admin/v1/keys") as r:
            (key_id,) = [k["id"] for k in (await r.json())["data"] if key.startswith(k["prefix"])]
        async with http.post(f"{daemons[0].url}/admin/v1/keys/{key_id}/revoke") as r:
            assert r.status == 200, await r.text()
    waits = await asyncio.gather(*(until_refused(d, key, 1.0) for d in daemons))
    assert max(waits) < 1.0
