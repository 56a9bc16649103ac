"""Rate limits, concurrency and quotas shared by every daemon on one Redis (`[limits] redis_url`).

The same answers as the local `Limiter` (same limits, order of checks, 429 bodies and
headers), but counted in Redis, so N daemons together let through what one limit allows.
Admission is one atomic script (`redis_scripts.ADMIT`) that checks and charges every scope
and every limit of the call in one round trip.

- Rates: GCRA buckets, charged the token estimate at admission and corrected by the real
  tokens at finish.
- Concurrency: each call holds a lease in a sorted set; a live daemon renews its calls'
  leases every `HEARTBEAT` seconds, so the slots of a daemon that died free themselves
  within `LEASE` seconds.
- Quotas: per-period counters of committed usage (named by the period's start, expiring
  after it), fed by the ledger's commit listener, plus the estimates of calls in flight. A
  period's counters are seeded once from the ledger's rollups, each only if absent, so a new
  daemon or a restarted Redis counts what was used before.

Time. Rates and leases run on Redis's own clock (`TIME` inside the scripts): daemons'
clocks differ, and a bucket written by a daemon whose clock runs ahead would let a daemon
behind it admit that difference again; one clock for all makes skew irrelevant. Period
counters are named from the daemon's wall clock: a day is coarse enough that a little skew
only decides which day a call at midnight counts in. A daemon on a `ManualClock` (tests)
passes its own time instead, so tests move shared time without sleeping.

Fallback. When Redis fails or is slower than `redis_timeout`, calls are admitted by the
local `Limiter` (`x-noor-limits: local` on their answers) until `RedisLink` finds Redis
again; what the daemon owes Redis meanwhile (committed usage, finished calls) is kept and
sent when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from noor_daemon.clock import Clock
from noor_daemon.domain.accounts import Account, ApiKey
from noor_daemon.domain.errors import GatewayError
from noor_daemon.ledger.accounts import AccountStore
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.limits import redis_scripts
from noor_daemon.limits.enforcer import (
    NO_KEY,
    Admission,
    Limiter,
    RateState,
    Scope,
    add_budget_headers,
    budget_error,
    concurrency_message,
    has_budget,
    quota_error,
    rate_error,
    rate_headers,
    rate_message,
    status_rows,
)
from noor_daemon.limits.periods import PERIODS, committed_since, counts_toward_quota, period_bounds
from noor_daemon.limits.redis_batch import ScriptBatcher, ScriptCall, raise_first_error, run_scripts
from noor_daemon.limits.redis_link import REDIS_FAILURES, RedisLink, SharedLimitsCollector

log = logging.getLogger("noor_daemon.limits")

LEASE = 60.0
"""Seconds a call keeps its concurrency slot without a heartbeat from its daemon."""
HEARTBEAT = 15.0
RATE_PERIOD = 60.0
LOCAL_HEADER = "x-noor-limits"
"""Set to `local` on answers whose limits this daemon enforced alone (Redis unreachable)."""
MAX_OWED = 10_000
"""Finished calls kept for Redis while it is down; older ones are left to their lease."""

LIMIT_ORDER = (
    "requests_per_minute",
    "tokens_per_minute",
    "concurrent_requests",
    "requests_per_day",
    "tokens_per_day",
    "tokens_per_month",
    "budget_per_day",
    "budget_per_month",
)
"""The limits in the order the ADMIT script takes them."""
PERIOD_OF = {
    "requests_per_day": "day", "tokens_per_day": "day", "tokens_per_month": "month",
    "budget_per_day": "day", "budget_per_month": "month",
}


class SharedAdmission(Admission):
    """An admission counted in Redis, known there by its call id."""

    __slots__ = ("call_id",)

    def __init__(self, scopes: list[Scope], estimate: int, headers: dict[str, str], call_id: str, worst: int = 0) -> None:
        super().__init__(scopes, estimate, headers, worst)
        self.call_id = call_id


@dataclass(frozen=True, slots=True)
class _Release:
    """A finished (or possibly charged, then abandoned) call: free its slot, correct its tokens."""

    call_id: str
    scopes: list[Scope]
    delta: int


class SharedLimiter:
    def __init__(self, local: Limiter, link: RedisLink, ledger: Ledger, clock: Clock, prefix: str) -> None:
        self.local = local
        self.link = link
        self.ledger = ledger
        self.clock = clock
        self.prefix = prefix
        client = link.client
        self._admit = ScriptBatcher(client, redis_scripts.ADMIT)
        self._finish = client.register_script(redis_scripts.FINISH)
        self._refresh = client.register_script(redis_scripts.REFRESH)
        self._add_usage = client.register_script(redis_scripts.ADD_USAGE)
        self._seed = client.register_script(redis_scripts.SEED)
        self._status = client.register_script(redis_scripts.STATUS)
        self._live: dict[str, SharedAdmission] = {}
        self._owed: deque[_Release] = deque(maxlen=MAX_OWED)
        self._usage: dict[tuple[str, str, str, int], list[int]] = {}
        """(scope, id, period, period start) -> [requests, tokens, cost] committed, not yet in Redis."""
        self._seed_due: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._flushed: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task] = []
        link.on_restore = self._restore

    @property
    def up(self) -> bool:
        return self.link.up

    # -- keys -------------------------------------------------------------------------

    def _scope_key(self, kind: str, ident: str) -> str:
        return f"{self.prefix}{kind}:{ident}:"

    def _counter(self, kind: str, ident: str, period: str, start: int) -> str:
        return f"{self.prefix}{kind}:{ident}:{period}:{start}"

    def _marker(self, period: str, start: int) -> str:
        return f"{self.prefix}seeded:{period}:{start}"

    def _scope_keys(self, kind: str, ident: str, wall: float) -> list[str]:
        """rpm, tpm, flight, held, day, month: the ADMIT script's keys for one scope."""
        base = self._scope_key(kind, ident)
        day, month = (int(period_bounds(period, wall)[0]) for period in PERIODS)
        return [base + "rpm", base + "tpm", base + "flight", base + "held", f"{base}day:{day}", f"{base}month:{month}"]

    def _now_arg(self) -> str:
        return "" if self.clock.real else repr(self.clock.now() - redis_scripts.BASE)

    def _batch_timeout(self) -> float:
        """Work off the request path (settling, heartbeats, seeding) may take a little longer."""
        return max(self.link.timeout() * 4, 1.0)

    # -- the request path -------------------------------------------------------------

    async def admit(
        self, key: ApiKey, account: Account, estimate: int, family: str, worst_cost: Callable[[], int] | None = None
    ) -> Admission:
        """Charge one call in Redis or raise the local limiter's 429; count locally while Redis is down."""
        if not self.link.up:
            return self._admit_locally(key, account, estimate, family, worst_cost)
        scopes = self.local.scopes(key, account)
        if not scopes:
            return Admission(scopes, estimate, {})
        worst = worst_cost() if worst_cost is not None and has_budget(scopes) else 0
        call_id = secrets.token_hex(8)
        wall = self.clock.now()
        keys: list[str] = []
        args: list[str | int | float] = [self._now_arg(), call_id, estimate, LEASE, RATE_PERIOD, worst]
        for scope in scopes:
            keys += self._scope_keys(scope.kind, scope.ident, wall)
            args += [scope.limits.get(name, 0) for name in LIMIT_ORDER]
        try:
            reply = await self.link.call(self._admit.run(keys, args))
        except REDIS_FAILURES as exc:
            self.link.failed(exc)
            self._owed.append(_Release(call_id, scopes, -estimate))  # in case it was charged before the answer was lost
            return self._admit_locally(key, account, estimate, family, worst_cost)
        except asyncio.CancelledError:
            self._owed.append(_Release(call_id, scopes, -estimate))
            self._kick()
            raise
        verdict, scope_no, which, retry_after, *state = reply
        budget = state[-3:] if verdict == "ok" else None
        if budget is not None:
            state = state[:-3]
        headers = self._headers(state, len(scopes), family, wall)
        if verdict == "ok":
            if budget is not None and int(budget[2]):
                period = "day" if int(budget[2]) == 7 else "month"
                add_budget_headers(headers, int(float(budget[0])), period, wall)
            admission = SharedAdmission(scopes, estimate, headers, call_id, worst)
            self._live[call_id] = admission
            self.local.charge(scopes, estimate, worst)
            return admission
        scope = scopes[int(scope_no) - 1]
        name = LIMIT_ORDER[int(which) - 1]
        limit = scope.limits[name]
        if verdict == "budget":
            self.local.refused_by_budget(scope, name)
            raise budget_error(scope.kind, name, limit, PERIOD_OF[name], wall, int(float(state[0])), worst)
        if verdict == "quota":
            raise quota_error(scope.kind, name, limit, PERIOD_OF[name], wall)
        if verdict == "concurrency":
            raise rate_error(headers, 1.0, concurrency_message(limit, scope.kind), code="concurrency_limit_exceeded")
        wait = float(retry_after)
        raise rate_error(headers, wait, rate_message(name, limit, scope.kind, wait), code="rate_limit_exceeded")

    def _admit_locally(
        self, key: ApiKey, account: Account, estimate: int, family: str, worst_cost: Callable[[], int] | None = None
    ) -> Admission:
        try:
            admission = self.local.admit(key, account, estimate, family, worst_cost)
        except GatewayError as error:
            error.headers[LOCAL_HEADER] = "local"
            raise
        admission.headers[LOCAL_HEADER] = "local"
        return admission

    @staticmethod
    def _headers(state: list, scopes: int, family: str, wall: float) -> dict[str, str]:
        """The tightest scope per unit (as `Limiter._tightest`), from the script's state."""
        states: dict[str, RateState] = {}
        for r, unit in enumerate(("requests", "tokens")):
            best: RateState | None = None
            for s in range(min(scopes, len(state) // 6)):
                i = (s * 2 + r) * 3
                limit = int(state[i])
                if limit:
                    candidate = (limit, int(state[i + 1]), float(state[i + 2]))
                    if best is None or candidate[1] < best[1]:
                        best = candidate
            if best is not None:
                states[unit] = best
        return rate_headers(states, family, wall) if states else {}

    async def finish(self, admission: Admission, tokens_used: int) -> None:
        """Settle a call on every exit path. Safe to call twice.

        A shared call's slot and token correction go to Redis with the next batch, after the
        usage the ledger committed for it; the caller waits for that (within `redis_timeout`),
        so a client that sends its next call on the answer finds its slot free.
        """
        if not isinstance(admission, SharedAdmission):
            self.local.finish(admission, tokens_used)
            return
        if admission.finished:
            return
        self.local.finish(admission, tokens_used)  # its local shadow (see `Limiter.charge`); marks it finished
        self._live.pop(admission.call_id, None)
        self._owed.append(_Release(admission.call_id, admission.scopes, tokens_used - admission.estimate))
        if self.link.up and self._tasks:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can lose a cancellation
                async with asyncio.timeout(self.link.timeout()):
                    await asyncio.shield(self._kick())

    def on_commit(self, events: list[UsageEvent]) -> None:
        """Ledger listener: committed usage of the current periods, for the next batch to Redis."""
        wall = self.clock.now()
        current = {period: period_bounds(period, wall)[0] for period in PERIODS}
        for event in events:
            if event.account_id is None:
                continue
            requests = 1 if counts_toward_quota(event) else 0
            tokens = event.total_tokens
            cost = event.cost or 0
            if not requests and not tokens and not cost:
                continue
            for period in PERIODS:
                start = period_bounds(period, event.ts / 1000)[0]
                if start != current[period]:
                    continue  # a call from a period that has ended no longer counts
                for kind, ident in (("account", event.account_id), ("key", event.key_id)):
                    if ident:
                        slot = self._usage.setdefault((kind, ident, period, int(start)), [0, 0, 0])
                        slot[0] += requests
                        slot[1] += tokens
                        slot[2] += cost
        if self._usage:
            self._kick()

    # -- batches to Redis, off the request path ----------------------------------------

    def _kick(self) -> asyncio.Future[None]:
        """Wake the settler; the future resolves once a batch holding everything owed now was sent."""
        if self._flushed is None:
            self._flushed = asyncio.get_running_loop().create_future()
        self._wake.set()
        return self._flushed

    async def _settle_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            done, self._flushed = self._flushed, None
            try:
                if self.link.up:
                    await self._flush()
            except REDIS_FAILURES as exc:
                self.link.failed(exc)
            except Exception:  # a bug here must not stop the settler
                log.exception("limits: settling with Redis failed")
            finally:
                if done is not None and not done.done():
                    done.set_result(None)

    async def _flush(self) -> None:
        """One pipeline: committed usage first, then the finished calls; then seed what was missing.

        Usage before releases: a call's reservation leaves only once its real usage counts.
        On failure everything is kept for the next try (usage summed, calls up to MAX_OWED); a
        batch whose answer was lost after Redis ran it then counts its usage twice (erring
        toward refusing), while releases are idempotent.
        """
        async with self._flush_lock:
            usage, self._usage = self._usage, {}
            owed = list(self._owed)
            self._owed.clear()
            wall = self.clock.now()
            current = {period: int(period_bounds(period, wall)[0]) for period in PERIODS}
            counters = [(slot, counts) for slot, counts in usage.items() if current[slot[2]] == slot[3]]
            if counters or owed:
                try:
                    async with asyncio.timeout(self._batch_timeout()):
                        results = await self._send(counters, owed)
                except BaseException:
                    self._give_back(usage, owed)
                    raise
                if counters:
                    self._seed_due.update(counters[int(i) - 1][0][2] for i in results[0])
            if self._seed_due:
                await self._seed_periods(wall)

    async def _send(self, counters: list[tuple[tuple[str, str, str, int], list[int]]], owed: list[_Release]) -> list:
        calls: list[ScriptCall] = []
        if counters:
            keys: list[str] = []
            args: list[int] = []
            for (kind, ident, period, start), (requests, tokens, cost) in counters:
                keys += [self._counter(kind, ident, period, start), self._marker(period, start)]
                args += [requests, tokens, cost, int(period_bounds(period, start)[1]) + 3600]
            calls.append((self._add_usage, keys, args))
        now = self._now_arg()
        for release in owed:
            keys = []
            args2: list[str | int | float] = [now, release.call_id, release.delta, RATE_PERIOD]
            for scope in release.scopes:
                base = self._scope_key(scope.kind, scope.ident)
                keys += [base + "tpm", base + "flight", base + "held"]
                args2.append(scope.limits.get("tokens_per_minute", 0))
            calls.append((self._finish, keys, args2))
        return raise_first_error(await run_scripts(self.link.client, calls))

    def _give_back(self, usage: dict[tuple[str, str, str, int], list[int]], owed: list[_Release]) -> None:
        for slot, (requests, tokens, cost) in usage.items():
            mine = self._usage.setdefault(slot, [0, 0, 0])
            mine[0] += requests
            mine[1] += tokens
            mine[2] += cost
        self._owed.extendleft(reversed(owed[-MAX_OWED:]))

    async def _seed_periods(self, wall: float) -> None:
        """Counters of the current periods from the ledger's rollups, each set only where absent."""
        for period in sorted(self._seed_due):
            start, end = period_bounds(period, wall)
            marker = self._marker(period, int(start))
            async with asyncio.timeout(self._batch_timeout()):
                seeded = await self.link.client.exists(marker)
            if not seeded:
                try:
                    rows = await committed_since(self.ledger, start)
                except Exception as exc:  # noqa: BLE001 - the ledger's trouble; retried with the next batch
                    log.warning("limits: cannot read the ledger to seed the shared %s counters: %s", period, type(exc).__name__)
                    return
                totals: dict[tuple[str, str], list[int]] = {}
                for row in rows:
                    for kind, ident in (("account", row["account_id"]), ("key", row["key_id"])):
                        if ident:
                            total = totals.setdefault((kind, ident), [0, 0, 0])
                            total[0] += int(row["requests"] or 0)
                            total[1] += int(row["tokens"] or 0)
                            total[2] += int(row["cost"] or 0)
                items = list(totals.items())
                async with asyncio.timeout(self._batch_timeout()):
                    for first in range(0, max(len(items), 1), 1000):
                        chunk = items[first : first + 1000]
                        keys = [marker] + [self._counter(kind, ident, period, int(start)) for (kind, ident), _ in chunk]
                        args: list[int | str] = [int(end) + 3600, "1" if first + 1000 >= len(items) else "0"]
                        for _, (requests, tokens, cost) in chunk:
                            args += [requests, tokens, cost]
                        await self._seed(keys=keys, args=args)
                log.info("limits: seeded the shared %s counters from the ledger (%d scopes)", period, len(items))
            self._seed_due.discard(period)

    async def _restore(self) -> None:
        """Redis answers again (or for the first time): pay what is owed, then seed absent periods."""
        self._seed_due.update(PERIODS)
        await self._flush()

    async def heartbeat(self) -> None:
        """Renew the leases of this daemon's calls in flight, so they keep their slots."""
        if not self.link.up or not self._live:
            return
        now = self._now_arg()
        try:
            calls: list[ScriptCall] = []
            for admission in list(self._live.values()):
                keys: list[str] = []
                for scope in admission.scopes:
                    base = self._scope_key(scope.kind, scope.ident)
                    keys += [base + "flight", base + "held"]
                calls.append((self._refresh, keys, [now, LEASE, admission.call_id]))
            async with asyncio.timeout(self._batch_timeout()):
                raise_first_error(await run_scripts(self.link.client, calls))
        except REDIS_FAILURES as exc:
            self.link.failed(exc)

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self.heartbeat()
            except Exception:  # a bug here must not stop the heartbeat
                log.exception("limits: heartbeat failed")

    # -- status and housekeeping ------------------------------------------------------

    async def status(self, key: ApiKey | None, account: Account) -> list[dict] | None:
        """`Limiter.status` from the shared counters; None while Redis is unusable (ask the local one)."""
        if not self.link.up:
            return None
        scopes = self.local.scopes(key or NO_KEY, account)
        if not scopes:
            return []
        wall = self.clock.now()
        now = self._now_arg()
        try:
            calls: list[ScriptCall] = []
            for scope in scopes:
                rpm, tpm, flight, _, day, month = self._scope_keys(scope.kind, scope.ident, wall)
                limits = [scope.limits.get("requests_per_minute", 0), scope.limits.get("tokens_per_minute", 0)]
                calls.append((self._status, [rpm, tpm, flight, day, month], [now, RATE_PERIOD, *limits]))
            async with asyncio.timeout(self._batch_timeout()):
                replies = raise_first_error(await run_scripts(self.link.client, calls))
        except REDIS_FAILURES as exc:
            self.link.failed(exc)
            return None
        rows = []
        for scope, reply in zip(scopes, replies, strict=True):
            rates = {
                "requests_per_minute": (int(reply[0]), float(reply[1])),
                "tokens_per_minute": (int(reply[2]), float(reply[3])),
            }
            periods = {
                "day": (int(reply[5]), int(reply[6]), int(reply[9])),
                "month": (int(reply[7]), int(reply[8]), int(reply[10])),
            }
            rows += status_rows(scope, wall, rates, int(reply[4]), periods)
        return rows

    async def forget_account(self, account: Account) -> None:
        """`AccountStore.on_account_deleted` hook: the account's shared counts go too."""
        self._usage = {slot: counts for slot, counts in self._usage.items() if slot[:2] != ("account", account.id)}
        if not self.link.up:
            return  # what stays in Redis names a deleted id only, and expires with its period
        try:
            async with asyncio.timeout(self._batch_timeout()):
                await self.link.client.unlink(*self._scope_keys("account", account.id, self.clock.now()))
        except REDIS_FAILURES as exc:
            self.link.failed(exc)

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: connect (or start counting locally), settle and renew in the background."""
        await self.link.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._settle_forever(), name="redis-limits-settle"),
            loop.create_task(self._heartbeat_forever(), name="redis-limits-heartbeat"),
        ]
        yield
        await self.close()

    async def close(self) -> None:
        """Stop the background tasks, send what is owed (best effort), close the connections."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        self._admit.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.link.up:
            with contextlib.suppress(*REDIS_FAILURES):
                await self._flush()
        await self.link.close()


def install_shared_limits(limiter: Limiter, ledger: Ledger, accounts: AccountStore, registry: CollectorRegistry) -> SharedLimiter:
    """Share `limiter`'s limits through Redis: the proxy and the quota reports then ask `limiter.shared`.
    The caller runs its `ctx` (the connection and the lease renewals) as a `cleanup_ctx` entry."""
    limits = limiter.config.limits
    assert limits.redis_url is not None
    link = RedisLink(limits.redis_url, lambda: limiter.config.limits.redis_timeout)
    shared = SharedLimiter(limiter, link, ledger, limiter.clock, limits.redis_prefix)
    limiter.shared = shared
    ledger.add_listener(shared.on_commit, immediate=True)
    accounts.on_account_deleted.append(shared.forget_account)
    registry.register(SharedLimitsCollector(link))
    return shared
