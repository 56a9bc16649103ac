"""One daemon's connection to the Redis that holds the shared limits, and whether it is usable now.

A call waits for Redis `[limits] redis_timeout` (a few times that at most while the delay
is its own daemon's load, see `call`). The first failure switches the daemon to its local
limiter (one warning); from then on calls do not try Redis at all, and a background task
probes it with a growing pause until it answers, restores what the daemon owes it
(`on_restore`), and switches back (one more line).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("noor_daemon.limits")

T = TypeVar("T")

REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
"""What an unreachable, refusing or slow Redis raises (asyncio's timeout is the builtin TimeoutError)."""

PATIENCE = 4
"""A call waits at most this many timeouts, and only while its daemon's own load is the reason."""
POOL_SIZE = 64
"""Connections per daemon; a burst waits for one (inside its timeout) rather than opening hundreds."""


def describe(url: str) -> str:
    """The URL without its password, for log lines."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or ''}"


class RedisLink:
    def __init__(
        self,
        url: str,
        timeout: Callable[[], float],
        *,
        retry_delays: tuple[float, float] = (0.25, 5.0),
    ) -> None:
        self.where = describe(url)
        self.timeout = timeout
        """Seconds a call may wait for Redis (read each time: a config reload changes it)."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=None,  # waiting for a connection is bounded by each caller's own timeout
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),  # redis-py retries 10 times by default; a call cannot wait for that
            socket_connect_timeout=max(timeout(), 1.0),
            socket_timeout=max(timeout() * 8, 5.0),
        )
        self.client = Redis(connection_pool=pool)
        self.up = False
        self.switches_to_local = 0
        self.answered_at = float("-inf")
        """Event-loop time of Redis's latest answer to a call (see `call`)."""
        self.on_restore: Callable[[], Awaitable[None]] | None = None
        """Run after Redis answers again, before calls use it: flush what was owed, seed counters."""
        self._first_delay, self._max_delay = retry_delays
        self._probe: asyncio.Task | None = None
        self._closing = False

    @property
    def mode(self) -> str:
        """`shared` while limits are counted in Redis, `fallback` while this daemon counts alone."""
        return "shared" if self.up else "fallback"

    async def call(self, command: Awaitable[T]) -> T:
        """Await one command within `timeout()`; longer (at most `PATIENCE` times) while the wait is not Redis's.

        A wait also counts this daemon's own event loop: in a burst of thousands of calls, one
        turn of the loop can take longer than the timeout, and an answer that came in time is
        read late. So a call gives up on Redis only when the loop was responsive (its timer
        fired on time) and Redis answered nothing, to any call, for a whole timeout.
        """
        limit = self.timeout()
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.ensure_future(command)
        task.add_done_callback(self._answered)
        try:
            while True:
                round_started = loop.time()
                if (await asyncio.wait((task,), timeout=limit))[0]:
                    break
                now = loop.time()
                responsive = now - round_started - limit < limit / 2
                if now - started >= limit * PATIENCE or (responsive and now - self.answered_at > limit):
                    raise TimeoutError
        except BaseException:
            task.cancel()
            raise
        return task.result()  # the command's own error, if it failed

    def _answered(self, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is None:
            self.answered_at = asyncio.get_running_loop().time()

    async def start(self) -> None:
        """Try Redis once; a daemon starts either way (counting locally until Redis answers)."""
        try:
            await self._restore()
        except Exception as exc:  # noqa: BLE001 - whatever stops it, the daemon starts and retries
            log.warning(
                "limits: Redis at %s is unreachable (%s); this daemon enforces its limits locally until it answers",
                self.where, _reason(exc),
            )
            self.switches_to_local += 1
            self._start_probe()
        else:
            self.up = True
            log.info("limits: shared through Redis at %s", self.where)

    def failed(self, exc: BaseException) -> None:
        """Redis failed or was too slow: count locally from now on and probe in the background."""
        if self.up:
            self.up = False
            self.switches_to_local += 1
            log.warning(
                "limits: Redis at %s failed (%s); this daemon enforces its limits locally until it is back",
                self.where, _reason(exc),
            )
        self._start_probe()

    async def _restore(self) -> None:
        async with asyncio.timeout(max(self.timeout() * 4, 1.0)):
            await self.client.ping()
        self.answered_at = asyncio.get_running_loop().time()
        if self.on_restore is not None:
            await self.on_restore()

    def _start_probe(self) -> None:
        if self._closing or (self._probe is not None and not self._probe.done()):
            return
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_up(), name="redis-limits-probe")

    async def _probe_until_up(self) -> None:
        delay = self._first_delay
        while not self.up:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_delay)
            try:
                await self._restore()
            except Exception as exc:  # noqa: BLE001 - keep probing whatever went wrong
                log.debug("limits: Redis at %s still unusable: %s", self.where, _reason(exc))
                continue
            self.up = True
            log.warning("limits: Redis at %s is back; limits are shared again", self.where)

    async def close(self) -> None:
        self._closing = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        with contextlib.suppress(*REDIS_FAILURES):
            await self.client.aclose()
            await self.client.connection_pool.disconnect()


def _reason(exc: BaseException) -> str:
    """A failure's class and message; redis-py's messages name host and port, never the password."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class SharedLimitsCollector(Collector):
    """`/metrics`: whether limits are shared right now, and how often this daemon fell back."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "noor_limits_shared",
            "1 while rate limits and quotas are counted in Redis; 0 while this daemon enforces them alone",
            value=1.0 if self._link.up else 0.0,
        )
        yield CounterMetricFamily(
            "noor_limits_local_fallbacks",
            "Times this daemon switched to its local limiter because Redis was unreachable or slow",
            value=self._link.switches_to_local,
        )
