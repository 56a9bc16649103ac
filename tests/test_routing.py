"""Several upstreams per model: strategies, fallback, circuit breakers, aliases and wildcards."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from standin_upstream import OPENAI_KEY_ENV, UPSTREAM_OPENAI_SECRET, StandIn

from noor_daemon.config import parse
from noor_daemon.gateway.routing import RouteHealth, Router
from noor_daemon.state import LEDGER, PROXY
from tests.gateway_helpers import openai_client

pytestmark = pytest.mark.engine_independent

MESSAGES = [{"role": "user", "content": "route me"}]


@pytest.fixture
async def upstreams(monkeypatch: pytest.MonkeyPatch, start_daemon) -> AsyncIterator[tuple[StandIn, StandIn]]:
    """Two stand-in providers, `a` and `b`. Depends on start_daemon so the daemon stops last."""
    monkeypatch.setenv(OPENAI_KEY_ENV, UPSTREAM_OPENAI_SECRET)
    a, b = await StandIn().start(), await StandIn().start()
    yield a, b
    await a.stop()
    await b.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def provider(name: str, base: str, **options: object) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in options.items())
    return f'[[providers]]\nname = "{name}"\nkind = "openai"\nbase_url = "{base}"\napi_key = "env:{OPENAI_KEY_ENV}"\n{extra}\n'


def two_routes(a: str, b: str, *, strategy: str = "priority", routing: str = "", weights: tuple = (1, 1)) -> str:
    return (
        provider("a", a)
        + provider("b", b)
        + f"""
[[models]]
name = "gpt-test"
strategy = "{strategy}"
aliases = ["fast"]
routes = [
  {{ provider = "a", model = "standin-gpt", priority = 0, weight = {weights[0]} }},
  {{ provider = "b", model = "standin-gpt", priority = 1, weight = {weights[1]} }},
]

[[models]]
name = "standin-*"
routes = [{{ provider = "b" }}]

[routing]
{routing}
"""
    )


async def route_rows(daemon) -> dict[str, tuple[int, int]]:
    rows = await daemon.app[LEDGER].fetchall("SELECT provider, sum(requests), sum(errors) FROM route_hourly GROUP BY provider")
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_connection_refused_falls_back_and_the_caller_is_charged_once(start_daemon, upstreams):
    _, b = upstreams
    daemon = await start_daemon(two_routes(f"http://127.0.0.1:{closed_port()}/v1", b.openai_base))
    client = openai_client(daemon, await daemon.create_key())
    answer = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert answer.usage.total_tokens > 0
    rows = await daemon.usage_rows()
    assert len(rows) == 1 and rows[0]["provider"] == "b" and rows[0]["status"] == 200
    await asyncio.sleep(0.05)  # the failed attempt's sample rides the next batch
    await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    stats = await route_rows(daemon)
    assert stats["a"][1] >= 1  # the failed attempt counts against route a
    assert stats["b"] == (2, 0)


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_5xx_and_429_fall_back_but_4xx_does_not(start_daemon, upstreams, status):
    a, b = upstreams
    daemon = await start_daemon(two_routes(a.openai_base, b.openai_base))
    client = openai_client(daemon, await daemon.create_key())
    a.fail(status, "upstream a is unwell")
    answer = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert answer.choices[0].message.content
    assert len(a.requests) == 1 and len(b.requests) == 1

    a.fail(400, "your request is wrong")
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert "your request is wrong" in str(refused.value.body)
    assert len(b.requests) == 1  # not retried elsewhere


async def test_when_every_route_fails_the_last_answer_reaches_the_client(start_daemon, upstreams):
    a, b = upstreams
    daemon = await start_daemon(two_routes(a.openai_base, b.openai_base))
    client = openai_client(daemon, await daemon.create_key())
    a.fail(500, "a down")
    b.fail(503, "b down too")
    with pytest.raises(openai.InternalServerError) as failed:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert failed.value.status_code == 503 and "b down too" in str(failed.value.body)
    rows = await daemon.usage_rows()
    assert [(r["status"], r["provider"]) for r in rows] == [(503, "b")]


async def test_breaker_opens_skips_the_route_then_probes_and_closes(start_daemon, upstreams, manual_clock):
    a, b = upstreams
    config = two_routes(a.openai_base, b.openai_base, routing="breaker_failures = 2\nbreaker_cooldown = 30")
    daemon = await start_daemon(config, clock=manual_clock)
    client = openai_client(daemon, await daemon.create_key())
    a.fail(500)
    for _ in range(2):
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert len(a.requests) == 2
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as admin:
        async with admin.get(f"{daemon.url}/admin/v1/routes") as response:
            states = {(r["provider"], r["model"]): r["state"] for r in (await response.json())["data"]}
        assert states[("a", "standin-gpt")] == "open"

        for _ in range(3):  # open: a is not even tried
            await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        assert len(a.requests) == 2

        a.reset()
        manual_clock.advance(31)  # cool-down over: one probe goes to a, and it succeeds
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        assert len(a.requests) == 3
        async with admin.get(f"{daemon.url}/admin/v1/routes") as response:
            states = {(r["provider"], r["model"]): r["state"] for r in (await response.json())["data"]}
        assert states[("a", "standin-gpt")] == "closed"

        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{daemon.url}/metrics") as response:
                metrics = await response.text()
    assert 'noor_route_state{model="standin-gpt",provider="a",state="closed"} 1.0' in metrics
    assert "noor_requests_total" in metrics and "acct_" not in metrics and "key_" not in metrics


async def test_all_routes_open_fails_fast_with_503(start_daemon, upstreams, manual_clock):
    a, b = upstreams
    config = two_routes(a.openai_base, b.openai_base, routing="breaker_failures = 1\nbreaker_cooldown = 30")
    daemon = await start_daemon(config, clock=manual_clock)
    client = openai_client(daemon, await daemon.create_key())
    a.fail(500)
    b.fail(500)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as refused:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert refused.value.status_code == 503 and "circuit open" in refused.value.body["message"]
    assert len(a.requests) == 1 and len(b.requests) == 1


async def test_a_stream_that_dies_before_its_first_byte_moves_on_cleanly(start_daemon, upstreams):
    a, b = upstreams
    daemon = await start_daemon(two_routes(a.openai_base, b.openai_base))
    client = openai_client(daemon, await daemon.create_key())
    a.close_mid_stream(after=0)
    stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "route me" in text  # one whole answer (the stand-in echoes the prompt), from b
    assert len(a.requests) == 1 and len(b.requests) == 1
    rows = await daemon.usage_rows()
    assert [(r["status"], r["provider"]) for r in rows] == [(200, "b")]


async def test_a_stream_that_dies_midway_is_never_spliced_with_another(start_daemon, upstreams):
    a, b = upstreams
    daemon = await start_daemon(two_routes(a.openai_base, b.openai_base))
    client = openai_client(daemon, await daemon.create_key())
    a.close_mid_stream(after=2)
    with pytest.raises(openai.APIError):
        stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass
    assert len(b.requests) == 0  # something was sent: no second upstream may add to it
    rows = await daemon.usage_rows()
    assert rows[-1]["status"] == 502 and rows[-1]["provider"] == "a"


async def test_the_total_deadline_bounds_a_hanging_upstream(start_daemon, upstreams):
    a, b = upstreams
    daemon = await start_daemon(two_routes(a.openai_base, b.openai_base, routing="total_deadline = 0.5"))
    client = openai_client(daemon, await daemon.create_key())
    a.hang()
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert failed.value.status_code == 504
    assert len(b.requests) == 0


async def test_weighted_routes_share_traffic_by_weight(start_daemon, upstreams):
    a, b = upstreams
    daemon = await start_daemon(two_routes(a.openai_base, b.openai_base, strategy="weighted", weights=(3, 1)))
    key = await daemon.create_key()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        for _ in range(200):
            async with session.post(f"{daemon.base_url}/chat/completions", json={"model": "gpt-test", "messages": MESSAGES}) as r:
                assert r.status == 200
    share = len(a.requests) / 200
    assert 0.62 < share < 0.88, share


async def test_aliases_and_wildcards(start_daemon, upstreams):
    a, b = upstreams
    daemon = await start_daemon(two_routes(a.openai_base, b.openai_base))
    client = openai_client(daemon, await daemon.create_key())
    await client.chat.completions.create(model="fast", messages=MESSAGES)
    assert a.last.body["model"] == "standin-gpt"
    await client.chat.completions.create(model="standin-gpt-mini", messages=MESSAGES)
    assert b.last.body["model"] == "standin-gpt-mini"  # a wildcard route sends the name as given
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="other-model", messages=MESSAGES)


def test_latency_strategy_prefers_the_fastest_measured_route():
    config = parse(
        """
[[providers]]
name = "slow"
kind = "simulator"
[[providers]]
name = "quick"
kind = "simulator"
[[models]]
name = "m"
strategy = "latency"
routes = [{ provider = "slow", model = "m" }, { provider = "quick", model = "m" }]
"""
    )

    class Up:
        def __init__(self, name: str) -> None:
            self.name, self.kind = name, "simulator"
            self.formats, self.secrets = {"chat/completions"}, ()

    router = Router(config, {"slow": Up("slow"), "quick": Up("quick")})
    first = router.routes("m", "chat/completions")
    assert [r.upstream.name for r in first] == ["slow", "quick"]  # nothing measured: config order
    router.health[("slow", "m")].on_success(400.0)
    assert [r.upstream.name for r in router.routes("m", "chat/completions")][0] == "quick"  # unmeasured goes first
    router.health[("quick", "m")].on_success(40.0)
    assert [r.upstream.name for r in router.routes("m", "chat/completions")] == ["quick", "slow"]
    for _ in range(20):
        router.health[("quick", "m")].on_success(900.0)
    assert [r.upstream.name for r in router.routes("m", "chat/completions")] == ["slow", "quick"]


def test_breaker_state_machine():
    health = RouteHealth(failures_to_open=3, cooldown=10)
    for _ in range(2):
        health.on_failure(0)
    assert health.state == "closed" and health.available(0)
    health.on_failure(1)
    assert health.state == "open" and not health.available(5)
    assert health.available(11) and health.state == "half_open"
    health.on_attempt()
    assert not health.available(11)  # one probe at a time
    health.on_failure(12)
    assert health.state == "open" and not health.available(15)
    assert health.available(23)
    health.on_attempt()
    health.on_success(10.0)
    assert health.state == "closed" and health.consecutive_failures == 0


async def test_active_health_checks_close_a_recovered_route_without_client_traffic(start_daemon, upstreams, manual_clock):
    a, b = upstreams
    config = two_routes(a.openai_base, b.openai_base, routing="breaker_failures = 1\nbreaker_cooldown = 3600")
    daemon = await start_daemon(config, clock=manual_clock)
    client = openai_client(daemon, await daemon.create_key())
    a.fail(500)
    await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    router = daemon.app[PROXY].router
    assert router.health[("a", "standin-gpt")].state == "open"

    assert await router.check_open_routes() == 0  # still failing: stays open
    assert router.health[("a", "standin-gpt")].state == "open"
    a.reset()  # the provider recovers; no client call goes its way (cool-down is an hour)
    assert await router.check_open_routes() == 1
    assert router.health[("a", "standin-gpt")].state == "closed"
    assert a.requests[-1].path == "/v1/models"
