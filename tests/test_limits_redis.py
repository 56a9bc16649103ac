"""Shared limits in a real Redis (`[limits] redis_url`): several limiters, one count.

Each test writes under its own key prefix and deletes it afterwards. Limiters here stand for
daemons: each has its own connection pool, its own local fallback and the same ManualClock,
so tests move shared time without sleeping. Skipped only when no Redis answers on
127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
import openai
import pytest
import redis.asyncio as redis_asyncio

from noor_daemon.cli.doctor import _daemon_report
from noor_daemon.clock import ManualClock
from noor_daemon.config import parse
from noor_daemon.domain.accounts import Account, ApiKey
from noor_daemon.domain.errors import GatewayError
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.limits.enforcer import Limiter
from noor_daemon.limits.periods import PeriodCounters
from noor_daemon.limits.redis_link import RedisLink
from noor_daemon.limits.shared import LEASE, LOCAL_HEADER, SharedLimiter
from noor_daemon.state import ACCOUNTS, KEYRING, LIMITER
from tests.conftest import SIMULATOR_CONFIG, StartDaemon

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
MESSAGES = [{"role": "user", "content": "hello"}]


def _redis_missing() -> str | None:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return None
            return f"something on {REDIS_HOST}:{REDIS_PORT} does not answer PING like Redis"
    except OSError as exc:
        return f"no Redis server on {REDIS_HOST}:{REDIS_PORT} ({exc.strerror or type(exc).__name__}); these tests need a real one"


pytestmark = pytest.mark.skipif(bool(_redis_missing()), reason=_redis_missing() or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; everything under it is deleted afterwards."""
    name = f"noor-test-{secrets.token_hex(4)}:"
    yield name
    client = redis_asyncio.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{name}*", count=1000)]
    if keys:
        await client.unlink(*keys)
    await client.aclose()


class Rollups:
    """The ledger's side of seeding: `usage_hourly` totals per (account, key) since a time."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.reads = 0

    async def fetchall(self, sql: str, params: tuple) -> list[dict]:
        assert "usage_hourly" in sql
        self.reads += 1
        return [{"cost": 0, **row} for row in self.rows]


def limits_config(plan: str, url: str = REDIS_URL, timeout: float = 2.0) -> str:
    return f'[limits]\nredis_url = "{url}"\nredis_timeout = {timeout}\n\n[plans.free]\n{plan}\n'


@contextlib.asynccontextmanager
async def shared_limiter(
    plan: str, clock: ManualClock, prefix: str, *, url: str = REDIS_URL, timeout: float = 2.0, rollups: Rollups | None = None
) -> AsyncIterator[SharedLimiter]:
    """One daemon's limiter: the local one with a SharedLimiter in front, started as the app starts it."""
    config = parse(limits_config(plan, url, timeout))
    local = Limiter(config, clock, PeriodCounters(clock))
    link = RedisLink(url, lambda: config.limits.redis_timeout, retry_delays=(0.05, 0.2))
    shared = SharedLimiter(local, link, rollups or Rollups(), clock, prefix)  # type: ignore[arg-type]
    local.shared = shared
    async with contextlib.asynccontextmanager(shared.ctx)(None):  # type: ignore[arg-type]
        yield shared


ACCOUNT = Account("acct_shared", "team@example.com", "free")
KEY = ApiKey("key_shared", ACCOUNT.id, "", "sk-noor-ab")


def outcome(result: object) -> str:
    if isinstance(result, GatewayError):
        return result.code or result.kind
    if isinstance(result, BaseException):
        raise result
    return "ok"


def committed(account: Account, key: ApiKey, clock: ManualClock, tokens: int, status: int = 200) -> UsageEvent:
    return UsageEvent(
        ts=int(clock.now() * 1000), model="sim-gpt", endpoint="chat/completions", status=status, latency_ms=1.0,
        account_id=account.id, key_id=key.id, provider="simulator", prompt_tokens=tokens, completion_tokens=0,
    )


# -- one count for several daemons -----------------------------------------------------------


async def test_three_limiters_admit_exactly_the_limit_under_a_concurrent_burst(prefix, manual_clock):
    async with (
        shared_limiter("requests_per_minute = 50", manual_clock, prefix) as a,
        shared_limiter("requests_per_minute = 50", manual_clock, prefix) as b,
        shared_limiter("requests_per_minute = 50", manual_clock, prefix) as c,
    ):
        limiters = [a, b, c]
        results = await asyncio.gather(
            *(limiters[i % 3].admit(KEY, ACCOUNT, 10, "openai") for i in range(300)), return_exceptions=True
        )
        outcomes = [outcome(r) for r in results]
        assert outcomes.count("ok") == 50
        assert outcomes.count("rate_limit_exceeded") == 250
        assert all(limiter.up for limiter in limiters)
        refused = [r for r in results if isinstance(r, GatewayError)]
        assert {e.headers["x-ratelimit-remaining-requests"] for e in refused} == {"0"}
        assert all(int(e.headers["retry-after"]) >= 1 and int(e.headers["retry-after-ms"]) >= 1 for e in refused)
        assert not any(LOCAL_HEADER in e.headers for e in refused)
        for admission in results:
            if not isinstance(admission, BaseException):
                await a.finish(admission, 10)


async def test_answers_are_the_local_limiters_answers(prefix, manual_clock):
    """Same limits, same clock, same calls: the same admissions, 429 bodies and headers."""
    plan = "requests_per_minute = 4\ntokens_per_minute = 1000\nconcurrent_requests = 3\nrequests_per_day = 6"
    key = ApiKey("key_tight", ACCOUNT.id, "", "sk-noor-cd", limits={"requests_per_minute": 3})
    local = Limiter(parse(limits_config(plan)), manual_clock, PeriodCounters(manual_clock))
    async with shared_limiter(plan, manual_clock, prefix) as shared:

        async def both(estimate: int, family: str) -> tuple:
            answers = []
            for admit in (lambda: local.admit(key, ACCOUNT, estimate, family), lambda: shared.admit(key, ACCOUNT, estimate, family)):
                try:
                    admission = admit()
                    if asyncio.iscoroutine(admission):
                        admission = await admission
                    answers.append(("ok", admission.headers, admission))
                except GatewayError as error:
                    answers.append((error.status, error.kind, error.code, error.message, error.headers))
            if answers[0][0] == "ok":
                assert answers[1][:2] == answers[0][:2]  # admitted by both, with the same headers
            else:
                assert answers[1] == answers[0]  # refused by both: status, kind, code, message, headers
            return answers

        held = []
        for family in ("openai", "anthropic", "openai"):  # 3 in flight: the 4th call meets the concurrency limit
            (_, _, mine), (_, _, theirs) = await both(300, family)
            held.append((mine, theirs))
        refused = await both(10, "openai")
        assert refused[0][2] == "concurrency_limit_exceeded"
        for mine, theirs in held:
            local.finish(mine, 100)
            await shared.finish(theirs, 100)
        refused = await both(10, "anthropic")  # the key's own 3 per minute are spent
        assert refused[0][2] == "rate_limit_exceeded" and "on this key" in refused[0][3]
        manual_clock.advance(20)  # one request refills (60 s / 3)
        await both(10, "openai")
        assert await local.report(key, ACCOUNT) == local.status(key, ACCOUNT)
        shared_rows = {(r["scope"], r["limit"]): r for r in await shared.status(key, ACCOUNT)}
        local_rows = {(r["scope"], r["limit"]): r for r in local.status(key, ACCOUNT)}
        for slot in [("account", "requests_per_minute"), ("key", "requests_per_minute"), ("account", "tokens_per_minute")]:
            assert shared_rows[slot] == local_rows[slot]


async def test_gcra_refills_with_the_clock_and_gives_no_burst_at_a_boundary(prefix, manual_clock):
    async with (
        shared_limiter("requests_per_minute = 6", manual_clock, prefix) as a,
        shared_limiter("requests_per_minute = 6", manual_clock, prefix) as b,
    ):
        manual_clock.advance(59 - manual_clock.now() % 60)
        for limiter in (a, b, a, b, a, b):
            await limiter.finish(await limiter.admit(KEY, ACCOUNT, 1, "openai"), 1)
        manual_clock.advance(2)  # a new minute has begun: nothing refilled but a third of a unit
        with pytest.raises(GatewayError) as refused:
            await b.admit(KEY, ACCOUNT, 1, "openai")
        assert refused.value.code == "rate_limit_exceeded"
        assert refused.value.headers["retry-after"] == "8"
        manual_clock.advance(8)  # one interval (60 s / 6) after the last charge: one request
        admitted = await a.admit(KEY, ACCOUNT, 1, "openai")
        assert admitted.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(GatewayError):
            await b.admit(KEY, ACCOUNT, 1, "openai")
        manual_clock.advance(60)
        assert (await b.admit(KEY, ACCOUNT, 1, "openai")).headers["x-ratelimit-remaining-requests"] == "5"


async def test_the_token_estimate_is_charged_then_corrected_at_finish(prefix, manual_clock):
    async with (
        shared_limiter("tokens_per_minute = 300", manual_clock, prefix) as a,
        shared_limiter("tokens_per_minute = 300", manual_clock, prefix) as b,
    ):
        first = await a.admit(KEY, ACCOUNT, 200, "openai")
        assert first.headers["x-ratelimit-remaining-tokens"] == "100"
        with pytest.raises(GatewayError) as refused:  # the estimate holds its room until finish
            await b.admit(KEY, ACCOUNT, 150, "openai")
        assert refused.value.code == "rate_limit_exceeded" and "tokens per minute" in refused.value.message
        await a.finish(first, 30)  # it used 30: 170 come back, for every daemon
        second = await b.admit(KEY, ACCOUNT, 150, "openai")
        assert second.headers["x-ratelimit-remaining-tokens"] == "120"
        await b.finish(second, 400)  # more than estimated: the difference is charged after the fact
        rows = {r["limit"]: r for r in await a.status(None, ACCOUNT)}
        assert rows["tokens_per_minute"]["used"] == 300 and rows["tokens_per_minute"]["remaining"] == 0
        await a.finish(first, 30)  # twice: nothing changes
        assert {r["limit"]: r for r in await a.status(None, ACCOUNT)}["tokens_per_minute"]["used"] == 300


async def test_concurrency_slots_free_on_finish_and_expire_for_a_dead_daemon(prefix, manual_clock):
    async with shared_limiter("concurrent_requests = 1", manual_clock, prefix) as survivor:
        async with shared_limiter("concurrent_requests = 1", manual_clock, prefix) as other:
            held = await other.admit(KEY, ACCOUNT, 1, "openai")
            with pytest.raises(GatewayError) as refused:
                await survivor.admit(KEY, ACCOUNT, 1, "openai")
            assert refused.value.code == "concurrency_limit_exceeded"
            await other.finish(held, 1)
            await survivor.finish(await survivor.admit(KEY, ACCOUNT, 1, "openai"), 1)  # the slot is free at once

            # A live daemon's heartbeat keeps its call's slot past one lease.
            held = await other.admit(KEY, ACCOUNT, 1, "openai")
            for _ in range(3):
                manual_clock.advance(LEASE * 0.6)
                await other.heartbeat()
            with pytest.raises(GatewayError):
                await survivor.admit(KEY, ACCOUNT, 1, "openai")
            assert {r["limit"]: r for r in await survivor.status(None, ACCOUNT)}["concurrent_requests"]["used"] == 1
        # `other` stopped without finishing its call, like a daemon that died: no more heartbeats.
        manual_clock.advance(LEASE - 1)
        with pytest.raises(GatewayError):
            await survivor.admit(KEY, ACCOUNT, 1, "openai")
        manual_clock.advance(2)
        await survivor.finish(await survivor.admit(KEY, ACCOUNT, 1, "openai"), 1)


async def test_day_quota_is_shared_seeded_from_the_ledger_and_reseeded_after_a_redis_restart(prefix, manual_clock):
    plan = "requests_per_day = 5\ntokens_per_day = 100000"
    rollups = Rollups()
    rollups.rows = [
        {"account_id": ACCOUNT.id, "key_id": KEY.id, "requests": 2, "tokens": 500},
        {"account_id": ACCOUNT.id, "key_id": "key_other", "requests": 1, "tokens": 100},
    ]
    async with shared_limiter(plan, manual_clock, prefix, rollups=rollups) as a:
        assert rollups.reads == 2  # day and month, once each
        rows = {r["limit"]: r for r in await a.status(None, ACCOUNT)}
        assert rows["requests_per_day"]["used"] == 3 and rows["tokens_per_day"]["used"] == 600
        assert rows["requests_per_day"]["resets_at"].endswith("T00:00:00Z")

        async with shared_limiter(plan, manual_clock, prefix, rollups=rollups) as b:
            assert rollups.reads == 2  # the periods were seeded already: a new daemon adds nothing twice
            first = await a.admit(KEY, ACCOUNT, 10, "openai")
            second = await b.admit(KEY, ACCOUNT, 10, "openai")  # 3 used + 2 in flight = 5
            with pytest.raises(GatewayError) as refused:
                await a.admit(KEY, ACCOUNT, 10, "openai")
            assert refused.value.status == 429 and refused.value.code == "insufficient_quota"
            assert refused.value.kind == "insufficient_quota" and "resets at" in refused.value.message
            assert 1 <= int(refused.value.headers["retry-after"]) <= 86400

            # The ledger commits the two calls (each daemon its own), then they finish.
            for limiter, admission in ((a, first), (b, second)):
                limiter.on_commit([committed(ACCOUNT, KEY, manual_clock, 40)])
                await limiter.finish(admission, 40)
            rows = {r["limit"]: r for r in await b.status(None, ACCOUNT)}
            assert rows["requests_per_day"]["used"] == 5 and rows["tokens_per_day"]["used"] == 680
            with pytest.raises(GatewayError):
                await b.admit(KEY, ACCOUNT, 10, "openai")

        # Redis restarts empty (keys and scripts): the next committed call finds no counter and the
        # period is seeded again.
        client = redis_asyncio.from_url(REDIS_URL)
        await client.unlink(*[k async for k in client.scan_iter(match=f"{prefix}*")])
        await client.script_flush()
        await client.aclose()
        # The ledger by then: the 3 seeded, the 2 calls above, and the 2 committed now (one failed: tokens only).
        rollups.rows.append({"account_id": ACCOUNT.id, "key_id": KEY.id, "requests": 3, "tokens": 121})
        a.on_commit([committed(ACCOUNT, KEY, manual_clock, 40, status=500)])
        a.on_commit([committed(ACCOUNT, KEY, manual_clock, 1)])
        for _ in range(100):
            rows = {r["limit"]: r for r in await a.status(None, ACCOUNT)}
            if rows["requests_per_day"]["used"]:
                break
            await asyncio.sleep(0.02)
        assert rows["requests_per_day"]["used"] == 6  # from the ledger, which holds that call already
        assert rows["tokens_per_day"]["used"] == 721
        with pytest.raises(GatewayError) as refused:
            await a.admit(KEY, ACCOUNT, 10, "openai")
        assert refused.value.code == "insufficient_quota"
        manual_clock.advance(86400)  # a new day: nothing used yet
        rows = {r["limit"]: r for r in await a.status(None, ACCOUNT)}
        assert rows["requests_per_day"]["used"] == 0
        await a.finish(await a.admit(KEY, ACCOUNT, 10, "openai"), 10)


async def test_a_deleted_account_leaves_no_shared_counts(prefix, manual_clock):
    async with shared_limiter("requests_per_minute = 5\nrequests_per_day = 9", manual_clock, prefix) as limiter:
        limiter.on_commit([committed(ACCOUNT, KEY, manual_clock, 3)])
        await limiter.finish(await limiter.admit(KEY, ACCOUNT, 3, "openai"), 3)
        client = redis_asyncio.from_url(REDIS_URL)
        assert [k async for k in client.scan_iter(match=f"{prefix}account:{ACCOUNT.id}:*")]
        await limiter.forget_account(ACCOUNT)
        assert not [k async for k in client.scan_iter(match=f"{prefix}account:{ACCOUNT.id}:*")]
        await client.aclose()
        rows = {r["limit"]: r for r in await limiter.status(None, ACCOUNT)}
        assert rows["requests_per_minute"]["used"] == 0 and rows["requests_per_day"]["used"] == 0


# -- when Redis is away ------------------------------------------------------------------------


class RedisDoor:
    """A TCP door in front of the real Redis on a port of its own: open, shut (the port refuses), or stuck
    (it accepts and never answers, like an overloaded or partitioned server)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self.stuck = False

    async def open(self, *, stuck: bool = False) -> None:
        self.stuck = stuck
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        self._writers.add(writer)
        try:
            if self.stuck:
                await reader.read()
                return
            up_reader, up_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            pass

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    async def shut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()
        self._tasks.clear()


@pytest.fixture
async def door() -> AsyncIterator[RedisDoor]:
    door = RedisDoor()
    yield door
    await door.shut()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def limit_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "noor_daemon.limits" and r.levelno >= logging.WARNING]


async def test_unreachable_redis_falls_back_to_local_limits_and_comes_back(prefix, manual_clock, door, caplog):
    caplog.set_level(logging.INFO, logger="noor_daemon.limits")
    await door.open()
    async with (
        shared_limiter("requests_per_minute = 4\nrequests_per_day = 100", manual_clock, prefix, url=door.url, timeout=0.5) as a,
        shared_limiter("requests_per_minute = 4\nrequests_per_day = 100", manual_clock, prefix) as witness,
    ):
        shared = await a.admit(KEY, ACCOUNT, 1, "openai")
        assert LOCAL_HEADER not in shared.headers and a.up

        await door.shut()  # the port now refuses connections
        started = time.monotonic()
        local = [await a.admit(KEY, ACCOUNT, 1, "openai") for _ in range(3)]
        assert time.monotonic() - started < 0.5
        assert not a.up and a.link.mode == "fallback"
        assert all(admission.headers[LOCAL_HEADER] == "local" for admission in local)
        # Counting alone, it starts from what it let through while shared (one call), not from a full bucket.
        assert [a.headers["x-ratelimit-remaining-requests"] for a in local] == ["2", "1", "0"]
        with pytest.raises(GatewayError) as refused:
            await a.admit(KEY, ACCOUNT, 1, "openai")
        assert refused.value.headers[LOCAL_HEADER] == "local" and refused.value.code == "rate_limit_exceeded"
        warnings = limit_warnings(caplog)
        assert len(warnings) == 1 and "enforces its limits locally" in warnings[0] and f":{door.port}" in warnings[0]

        # What the daemon owes Redis while it is away is kept: its committed usage and its finished call.
        a.on_commit([committed(ACCOUNT, KEY, manual_clock, 7)])
        await a.finish(shared, 7)
        for admission in local:
            await a.finish(admission, 1)
        assert a.local.in_flight("account", ACCOUNT.id) == 0

        await door.open()
        await until(lambda: a.up)
        warnings = limit_warnings(caplog)
        assert len(warnings) == 2 and "is back" in warnings[1]
        await until(lambda: not a._owed and not a._usage)  # noqa: SLF001
        rows = {r["limit"]: r for r in await witness.status(None, ACCOUNT)}
        assert rows["requests_per_day"]["used"] == 1  # the usage committed during the outage reached Redis
        assert rows["requests_per_minute"]["used"] == 1  # only the call admitted through Redis is in its bucket
        back = await a.admit(KEY, ACCOUNT, 1, "openai")
        assert LOCAL_HEADER not in back.headers and back.headers["x-ratelimit-remaining-requests"] == "2"
        await a.finish(back, 1)


async def test_a_redis_that_never_answers_costs_one_timeout_then_nothing(prefix, manual_clock, door, caplog):
    await door.open(stuck=True)  # accepts connections, answers nothing
    async with shared_limiter("requests_per_minute = 10", manual_clock, prefix, url=door.url, timeout=0.3) as limiter:
        assert not limiter.up  # the start-up probe timed out; the daemon started anyway
        started = time.monotonic()
        admissions = [await limiter.admit(KEY, ACCOUNT, 1, "openai") for _ in range(10)]
        assert time.monotonic() - started < 0.2  # nobody waits for Redis while it is known to be down
        assert all(a.headers[LOCAL_HEADER] == "local" for a in admissions)
        assert limiter.link.switches_to_local == 1


async def test_a_redis_that_stops_answering_mid_call_falls_back_within_the_timeout(prefix, manual_clock, door):
    await door.open()
    async with shared_limiter("requests_per_minute = 10", manual_clock, prefix, url=door.url, timeout=0.3) as limiter:
        assert limiter.up
        await door.shut()
        await door.open(stuck=True)
        await limiter.link.client.connection_pool.disconnect()  # the next command needs a new connection: it hangs
        started = time.monotonic()
        admission = await limiter.admit(KEY, ACCOUNT, 1, "openai")
        assert time.monotonic() - started < 1.0
        assert admission.headers[LOCAL_HEADER] == "local" and not limiter.up


async def test_a_closed_port_at_start_means_local_limits_from_the_first_call(prefix, manual_clock):
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with shared_limiter("requests_per_minute = 1", manual_clock, prefix, url=url, timeout=0.25) as limiter:
        assert not limiter.up
        assert (await limiter.admit(KEY, ACCOUNT, 1, "openai")).headers[LOCAL_HEADER] == "local"
        with pytest.raises(GatewayError) as refused:
            await limiter.admit(KEY, ACCOUNT, 1, "openai")
        assert refused.value.code == "rate_limit_exceeded" and refused.value.headers[LOCAL_HEADER] == "local"
        assert await limiter.status(None, ACCOUNT) is None  # quota reports then come from the local limiter
        assert {r["limit"]: r for r in await limiter.local.report(None, ACCOUNT)}["requests_per_minute"]["used"] == 1


# -- a real daemon ---------------------------------------------------------------------------


def daemon_config(plan: str, url: str, prefix: str) -> str:
    return (
        SIMULATOR_CONFIG
        + f'\n[limits]\nredis_url = "{url}"\nredis_timeout = 2.0\nredis_prefix = "{prefix}"\n\n[plans.free]\n{plan}\n'
    )


async def test_a_daemon_answers_429_from_the_shared_count_through_the_openai_sdk(start_daemon: StartDaemon, prefix, manual_clock):
    daemon = await start_daemon(daemon_config("requests_per_minute = 3\nrequests_per_day = 50", REDIS_URL, prefix), clock=manual_clock)
    key = await daemon.create_key("team@example.com")
    client = openai.AsyncOpenAI(api_key=key, base_url=daemon.base_url, max_retries=0)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/healthz") as r:
            assert (await r.json())["limits"] == "shared"

    # Another daemon on the same Redis spends one of the account's three requests.
    account = daemon.app[KEYRING].accounts[(await daemon.app[ACCOUNTS].get_account("team@example.com")).id]
    async with shared_limiter("requests_per_minute = 3\nrequests_per_day = 50", manual_clock, prefix) as elsewhere:
        (api_key,) = await daemon.app[ACCOUNTS].list_keys(account.id)
        await elsewhere.finish(await elsewhere.admit(api_key, account, 1, "openai"), 1)

    first = await client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MESSAGES)
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert LOCAL_HEADER not in first.headers
    await client.chat.completions.create(model="sim-gpt", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="sim-gpt", messages=MESSAGES)
    error = refused.value
    assert error.body["code"] == "rate_limit_exceeded" and error.body["type"] == "requests"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(error.response.headers["retry-after"]) >= 1 and int(error.response.headers["retry-after-ms"]) >= 1
    assert error.response.headers["x-ratelimit-reset-requests"].endswith("s")

    # Its quota report reads the shared counters: three this minute, whoever admitted them.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.base_url}/me/quota", headers={"Authorization": f"Bearer {key}"}) as r:
            report = await r.json()
        async with http.get(f"{daemon.url}/metrics") as r:
            metrics = await r.text()
    rows = {row["limit"]: row for row in report["limits"]}
    assert rows["requests_per_minute"]["used"] == 3
    assert rows["requests_per_day"]["used"] == 2  # committed by this daemon's ledger (the other call was never metered)
    assert "noor_limits_shared 1.0" in metrics

    manual_clock.advance(20)
    assert (await client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MESSAGES)).status_code == 200


async def test_a_daemon_without_redis_enforces_locally_and_says_so(start_daemon: StartDaemon, prefix, manual_clock):
    url = f"redis://127.0.0.1:{free_port()}/0"
    daemon = await start_daemon(daemon_config("requests_per_minute = 2", url, prefix), clock=manual_clock)
    client = openai.AsyncOpenAI(api_key=await daemon.create_key(), base_url=daemon.base_url, max_retries=0)
    answers = [await client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MESSAGES) for _ in range(2)]
    assert [a.headers[LOCAL_HEADER] for a in answers] == ["local", "local"]
    assert answers[1].headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="sim-gpt", messages=MESSAGES)
    assert refused.value.response.headers[LOCAL_HEADER] == "local"
    assert refused.value.body["code"] == "rate_limit_exceeded"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/healthz") as r:
            assert r.status == 200 and (await r.json())["limits"] == "fallback"
        async with http.get(f"{daemon.url}/metrics") as r:
            metrics = await r.text()
    assert "noor_limits_shared 0.0" in metrics
    assert "noor_limits_local_fallbacks_total 1.0" in metrics
    doctor = await _daemon_report(daemon.url, daemon.admin_token)
    assert doctor["limits"] == "fallback"


async def test_a_daemon_without_redis_url_counts_in_process(start_daemon: StartDaemon):
    daemon = await start_daemon(SIMULATOR_CONFIG + "\n[plans.free]\nrequests_per_minute = 5\n")
    assert daemon.app[LIMITER].shared is None
    client = openai.AsyncOpenAI(api_key=await daemon.create_key(), base_url=daemon.base_url, max_retries=0)
    answer = await client.chat.completions.with_raw_response.create(model="sim-gpt", messages=MESSAGES)
    assert LOCAL_HEADER not in answer.headers
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/healthz") as r:
            assert (await r.json())["limits"] == "local"


def test_period_counters_are_named_by_the_utc_period_start(manual_clock):
    """Every daemon names a day's counter alike, whatever its time zone."""
    config = parse(limits_config("requests_per_day = 1"))
    shared = SharedLimiter(
        Limiter(config, manual_clock, PeriodCounters(manual_clock)), RedisLink(REDIS_URL, lambda: 1.0), Rollups(),  # type: ignore[arg-type]
        manual_clock, "p:",
    )
    wall = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC).timestamp()
    keys = shared._scope_keys("account", "a1", wall)  # noqa: SLF001
    assert keys[4] == f"p:account:a1:day:{int(datetime(2025, 3, 14, tzinfo=UTC).timestamp())}"
    assert keys[5] == f"p:account:a1:month:{int(datetime(2025, 3, 1, tzinfo=UTC).timestamp())}"
