"""Keep-alive on a real network's terms, through the daemon with the real OpenAI SDK: a provider that
closes idle connections on its own schedule costs no call, no breaker failure, no double metering;
and a burst never opens more than `max_connections` sockets to a provider."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import aiohttp
import pytest
from gateway_helpers import openai_client, wait_for_rows

from benchmarks.closing_upstream import ClosingUpstream
from noor_daemon.server import LISTEN_BACKLOG
from noor_daemon.state import PROXY, UPSTREAM_POOL

pytestmark = pytest.mark.engine_independent

KEY_ENV = "CLOSING_UPSTREAM_KEY"


def closing_config(upstream: ClosingUpstream, extra: str = "") -> str:
    return f"""
[[providers]]
name = "closing"
kind = "openai"
base_url = "{upstream.base_url}"
api_key = "env:{KEY_ENV}"
{extra}

[[models]]
name = "gpt-test"
routes = [{{ provider = "closing", model = "standin" }}]
"""


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, "sk-closing-upstream")
    server = await ClosingUpstream(idle_range=(0.5, 2.0), fin_delay=0.02, seed=18).start()
    yield server
    await server.stop()


async def _call(client, stream: bool) -> tuple[int, int]:
    messages = [{"role": "user", "content": "say ok"}]
    if not stream:
        completion = await client.chat.completions.create(model="gpt-test", messages=messages)
        return completion.usage.prompt_tokens, completion.usage.completion_tokens
    chunks = await client.chat.completions.create(
        model="gpt-test", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    usage = None
    async for chunk in chunks:
        usage = chunk.usage or usage
    return usage.prompt_tokens, usage.completion_tokens


async def test_a_provider_closing_idle_connections_after_half_a_second_to_two_costs_no_call(start_daemon, upstream):
    """1,000 calls (JSON and streams) in bursts separated by 0.3–2.3 s, so the pool's connections have been
    idle for about as long as the provider keeps them: some it closed long ago, some it is closing as they
    are reused (its FIN 20 ms away), some are still good."""
    daemon = await start_daemon(closing_config(upstream))
    client = openai_client(daemon, await daemon.create_key("stale@example.com"), timeout=30)
    rng = random.Random(18)
    results: list = []
    while len(results) < 1000:
        burst = [_call(client, stream=i % 2 == 1) for i in range(min(100, 1000 - len(results)))]
        results += await asyncio.gather(*burst, return_exceptions=True)
        await asyncio.sleep(rng.uniform(0.3, 2.3))
    errors = [type(r).__name__ for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert set(results) == {(5, 3)}
    rows = await wait_for_rows(daemon, 1000)
    assert len(rows) == 1000 and {r["status"] for r in rows} == {200}  # each call metered once
    (route,) = daemon.app[PROXY].router.snapshot()
    assert (route["failures"], route["state"], route["requests"]) == (0, "closed", 1000)
    (stats,) = daemon.app[UPSTREAM_POOL].stats()
    assert upstream.idle_closes > 100  # the provider did close idle connections under the pool, many times
    assert stats["retries"] >= 1  # and some closes raced a reuse: those calls went again on a fresh connection
    assert upstream.requests == 1000  # a retried request had not been read: the provider served each call once


async def test_500_concurrent_calls_open_no_more_than_max_connections_and_the_wait_shows_in_metrics(start_daemon, upstream):
    upstream.answer_delay = 0.02
    daemon = await start_daemon(closing_config(upstream, "max_connections = 8\nkeepalive_expiry = 30"))
    client = openai_client(daemon, await daemon.create_key("burst@example.com"), timeout=60)

    async def started_in_waves(i: int) -> tuple[int, int]:
        await asyncio.sleep(i // 50 * 0.05)  # 50 new connections at a time, all within the daemon's listen backlog
        return await _call(client, stream=i % 3 == 0)

    results = await asyncio.gather(*(started_in_waves(i) for i in range(500)), return_exceptions=True)
    failed = [f"{r!r} from {r.__cause__!r}" for r in results if isinstance(r, BaseException)]
    assert failed == []
    assert upstream.peak_open <= 8 and upstream.connections >= 1
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/metrics") as response:
            text = await response.text()
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith("noor_upstream_")}
    assert metrics['noor_upstream_connections_open{provider="closing"}'] <= 8
    assert metrics['noor_upstream_connection_waits_total{provider="closing"}'] > 100
    assert metrics['noor_upstream_connection_wait_seconds_total{provider="closing"}'] > 0
    assert metrics['noor_upstream_connection_waiting{provider="closing"}'] == 0
    assert len(await wait_for_rows(daemon, 500)) == 500



@pytest.mark.skipif(int(Path("/proc/sys/net/core/somaxconn").read_text()) < LISTEN_BACKLOG, reason="the kernel caps the backlog lower")
async def test_a_burst_of_300_connections_while_the_daemon_is_not_accepting_is_queued_not_dropped(start_daemon):
    """The kernel completes connections the daemon has yet to accept, up to its listen backlog; past it a
    SYN is dropped and the caller waits a second or more to try again. With the daemon made busy (its
    listening socket unwatched: nothing accepted), 300 connections are opened: each completes at once."""
    daemon = await start_daemon()
    (listening,) = [sock for site in daemon.runner.sites for sock in site._server.sockets]  # noqa: SLF001
    asyncio.get_running_loop().remove_reader(listening.fileno())
    address = listening.getsockname()[:2]

    def open_300() -> str:
        opened: list[socket.socket] = []
        try:
            for _ in range(300):
                opened.append(socket.create_connection(address, timeout=0.5))
        except OSError as exc:
            return f"connection {len(opened) + 1}: {exc!r}"
        finally:
            for sock in opened:
                sock.close()
        return "all open"

    assert await asyncio.to_thread(open_300) == "all open"
