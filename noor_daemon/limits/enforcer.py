"""The limiter the proxy consults on every call: rates, concurrency and period quotas, in memory.

An account's limits come from its plan; a key may carry tighter overrides of its own, so
each call is checked against two scopes. Checks and charges happen with no `await` in
between, which makes them atomic on the event loop: hundreds of concurrent calls at the
limit cannot slip more through than the limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from noor_daemon.clock import Clock
from noor_daemon.config import Config, PlanConfig
from noor_daemon.domain.accounts import Account, ApiKey
from noor_daemon.domain.errors import GatewayError
from noor_daemon.domain.money import amount, units
from noor_daemon.domain.money import text as money_text
from noor_daemon.limits import gcra
from noor_daemon.limits.gcra import Rate
from noor_daemon.limits.periods import PERIODS, PeriodCounters, PeriodCounts, period_bounds

if TYPE_CHECKING:
    from noor_daemon.limits.shared import SharedLimiter

LIMIT_NAMES = (
    "requests_per_minute",
    "tokens_per_minute",
    "concurrent_requests",
    "requests_per_day",
    "tokens_per_day",
    "tokens_per_month",
    "budget_per_day",
    "budget_per_month",
)

RATE_LIMITS = (("requests_per_minute", "requests"), ("tokens_per_minute", "tokens"))
# (limit name, period, counts requests or tokens)
PERIOD_LIMITS = (
    ("requests_per_day", "day", "requests"),
    ("tokens_per_day", "day", "tokens"),
    ("tokens_per_month", "month", "tokens"),
)
BUDGETS = (("budget_per_day", "day"), ("budget_per_month", "month"))
"""Spend limits, in picounits within a `Scope` (the config and the API take them in the currency)."""


PERIOD_INDEX = {period: index for index, period in enumerate(PERIODS)}
"""Where a period's counts are in what `PeriodCounters.current` returns."""
COUNT_INDEX = {"requests": 1, "tokens": 2, "cost": 3}
"""Where requests, tokens and spend are in a period's counts."""


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str  # "account" | "key"
    ident: str
    limits: dict[str, int]
    rates: tuple[tuple[str, tuple[str, str, str], str, int, Rate], ...] = field(init=False, repr=False, compare=False)
    """(name, bucket slot, unit, limit, rate) of its per-minute limits: requests first, then tokens."""
    quotas: tuple[tuple[str, str, int, int, int], ...] = field(init=False, repr=False, compare=False)
    """(name, period, period index, count index, limit) of its day and month quotas."""
    budgets: tuple[tuple[str, str, int, int], ...] = field(init=False, repr=False, compare=False)
    """(name, period, period index, picounits) of its budgets.

    Every call checks them: a scope finds them once, and a call reads the scope's counts once for all of them."""

    def __post_init__(self) -> None:
        limits = self.limits
        object.__setattr__(self, "rates", tuple(
            (name, (self.kind, self.ident, name), unit, limits[name], rate(limits[name])) for name, unit in RATE_LIMITS if name in limits
        ))
        object.__setattr__(self, "quotas", tuple(
            (name, period, PERIOD_INDEX[period], COUNT_INDEX[unit], limits[name]) for name, period, unit in PERIOD_LIMITS if name in limits
        ))
        object.__setattr__(self, "budgets", tuple(
            (name, period, PERIOD_INDEX[period], limits[name]) for name, period in BUDGETS if name in limits
        ))


class Admission:
    """What one admitted call holds: its scopes, its token estimate, its concurrency slot and the worst case
    of its cost (held against every budget until its real cost is committed)."""

    __slots__ = ("scopes", "estimate", "finished", "headers", "worst")

    def __init__(self, scopes: list[Scope], estimate: int, headers: dict[str, str], worst: int = 0) -> None:
        self.scopes = scopes
        self.estimate = estimate
        self.finished = False
        self.headers = headers
        self.worst = worst


@lru_cache(maxsize=4096)
def rate(limit: int) -> Rate:
    """The per-minute `Rate` of a limit, made once: every call checks two or four of them."""
    return Rate(limit)


def plan_limits(plan: PlanConfig | None) -> dict[str, int]:
    if plan is None:
        return {}
    return scope_limits({name: value for name in LIMIT_NAMES if (value := getattr(plan, name)) is not None})


def scope_limits(limits: dict[str, float | int]) -> dict[str, int]:
    """Limits as a `Scope` holds them: budgets (given in the currency) as picounits, the rest as they are."""
    return {name: units(value) if name.startswith("budget_") else int(value) for name, value in limits.items() if name in LIMIT_NAMES}


NOTHING_RESERVED = (0, 0, 0)
"""A scope with no call in flight: (requests, tokens, worst-case cost) held."""


def has_budget(scopes: list[Scope]) -> bool:
    return any(scope.budgets for scope in scopes)


def budget_error(scope_kind: str, name: str, limit: int, period: str, wall: float, spent: int, worst: int) -> GatewayError:
    """A 429 `insufficient_quota` naming the budget, what is left, and when it resets."""
    _, resets = period_bounds(period, wall)
    left = max(0, limit - spent)
    return GatewayError(
        429,
        "insufficient_quota",
        f"This {scope_kind}'s {name.replace('_', ' ')} of {money_text(limit)} has {money_text(left)} left, less than "
        f"this call may cost ({money_text(worst)} at most; lower max_tokens to fit). It resets at {rfc3339(resets)}.",
        code="insufficient_quota",
        headers={"retry-after": str(max(1, math.ceil(resets - wall)))},
    )


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:  # float noise (0.6000000001 s) is not another millisecond
        return f"{max(0, math.ceil(seconds * 1000 - 1e-6))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


def rfc3339(ts: float) -> str:
    second = math.floor(ts)
    if round((ts - second) * 1e6) >= 1_000_000:  # as datetime rounds it (to the microsecond): the next second
        second += 1
    return _rfc3339_second(second)


@lru_cache(maxsize=256)
def _rfc3339_second(second: int) -> str:
    """Cached by the second: Anthropic's rate-limit headers write two resets, a few seconds ahead, on every call."""
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def add_budget_headers(headers: dict[str, str], left: int, period: str, wall: float) -> None:
    """An answer's budget headers, in the currency (neither API dialect has a standard for spend): what is left
    of the tightest budget and when it resets. Every call under a budget writes them (about 2 us each, issue
    #20), so the limit, which only changes with the config, is left to `/v1/me`, `noor spend` and the 429."""
    headers["x-noor-budget-remaining"] = money_text(left)
    headers["x-noor-budget-reset"] = _period_end_text(period, int(wall // 86400))


@lru_cache(maxsize=16)
def _period_end_text(period: str, day: int) -> str:
    """When the `period` holding UTC day number `day` ends (a quota period is made of whole UTC days)."""
    return rfc3339(period_bounds(period, day * 86400.0)[1])


RateState = tuple[int, int, float]
"""(limit, remaining, seconds until the bucket is full) of the tightest scope for one unit."""


def rate_headers(states: dict[str, RateState], family: str, wall: float) -> dict[str, str]:
    """Rate-limit headers in the caller's dialect: OpenAI's x-ratelimit-* or anthropic-ratelimit-*.

    `states` maps "requests"/"tokens" to their tightest state; the local and the shared
    limiter both answer through here, so their headers cannot drift apart.
    """
    headers: dict[str, str] = {}
    for unit, (limit, left, reset) in states.items():
        if family == "anthropic":
            headers[f"anthropic-ratelimit-{unit}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{unit}-remaining"] = str(left)
            headers[f"anthropic-ratelimit-{unit}-reset"] = rfc3339(wall + reset)
        else:
            headers[f"x-ratelimit-limit-{unit}"] = str(limit)
            headers[f"x-ratelimit-remaining-{unit}"] = str(left)
            headers[f"x-ratelimit-reset-{unit}"] = format_duration(reset)
    return headers


def rate_error(headers: dict[str, str], retry_after: float, message: str, *, code: str) -> GatewayError:
    """A 429 `rate_limit` carrying the rate headers and `retry-after`/`retry-after-ms`."""
    headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
    return GatewayError(429, "rate_limit", message, code=code, headers=headers)


def rate_message(name: str, limit: int, scope_kind: str, retry_after: float) -> str:
    what = "requests" if name == "requests_per_minute" else "tokens"
    return (
        f"Rate limit reached for {what} per minute (limit {limit}) on this {scope_kind}. "
        f"Please try again in {format_duration(retry_after)}."
    )


def concurrency_message(limit: int, scope_kind: str) -> str:
    return f"Too many concurrent requests (limit {limit}) for this {scope_kind}."


def quota_error(scope_kind: str, name: str, limit: int, period: str, wall: float) -> GatewayError:
    """A 429 `insufficient_quota`: the day or month quota is spent until the period resets."""
    _, resets = period_bounds(period, wall)
    return GatewayError(
        429,
        "insufficient_quota",
        f"You exceeded this {scope_kind}'s {name.replace('_', ' ')} quota ({limit}). It resets at {rfc3339(resets)}.",
        code="insufficient_quota",
        headers={"retry-after": str(max(1, math.ceil(resets - wall)))},
    )


class Limiter:
    def __init__(self, config: Config, clock: Clock, counters: PeriodCounters) -> None:
        self.config = config
        self.clock = clock
        self.counters = counters
        self._tat: dict[tuple[str, str, str], float] = {}
        self._limit_of: dict[tuple[str, str, str], int] = {}
        """The limit each TAT was computed under; a changed limit rescales what was used."""
        self._active: dict[tuple[str, str], int] = {}
        self._reserved: dict[tuple[str, str], list[int]] = {}
        self._account_scopes: dict[str, tuple[Config, tuple[str, dict], Scope | None]] = {}
        """Each account's scope, kept while the config, the account's plan and its own limits stay the same."""
        self.budget_refusals: list[Callable[[str, str, str], None]] = []
        """Called with (scope kind, scope id, budget name) when a budget refuses a call: the budget alerts'
        100 % ("calls are now refused"), which strict admission reaches before the spend does."""
        self.shared: SharedLimiter | None = None
        """The Redis-backed limiter when `[limits] redis_url` is set; this one then counts only
        while Redis is unreachable. The proxy asks `shared` first when it is there."""

    # -- which limits apply -----------------------------------------------------------

    def scopes(self, key: ApiKey, account: Account) -> list[Scope]:
        cached = self._account_scopes.get(account.id)
        if cached is None or cached[0] is not self.config or cached[1] != (account.plan, account.limits):
            account_limits = plan_limits(self.config.plan(account.plan)) | scope_limits(account.limits)
            scope = Scope("account", account.id, account_limits) if account_limits else None
            cached = self._account_scopes[account.id] = (self.config, (account.plan, dict(account.limits)), scope)
        scopes = [cached[2]] if cached[2] is not None else []
        if key.limits:
            key_limits = scope_limits(key.limits)
            if key_limits:
                scopes.append(Scope("key", key.id, key_limits))
        return scopes

    # -- the request path -------------------------------------------------------------

    def admit(
        self, key: ApiKey, account: Account, estimate: int, family: str, worst_cost: Callable[[], int] | None = None
    ) -> Admission:
        """Charge one call or raise a 429 `GatewayError` carrying `retry-after`.

        `worst_cost` (picounits) is asked only when a budget applies: the call is admitted only if what was
        spent, plus the worst cases of the calls in flight, plus its own, fits every budget — so the spend
        stays within the budget as long as no call costs more than its worst case."""
        now = self.clock.monotonic()  # small numbers keep float rounding far below one unit
        wall = self.clock.now()
        scopes = self.scopes(key, account)
        worst = None  # asked of the first scope with a budget
        tightest_budget = None
        for scope in scopes:
            if scope.quotas or scope.budgets:
                counts = self.counters.current(scope.kind, scope.ident, wall)
                reserved = self._reserved.get((scope.kind, scope.ident), NOTHING_RESERVED)
                if scope.quotas:
                    self._check_quotas(scope, counts, reserved, wall)
                if scope.budgets:
                    if worst is None:
                        worst = worst_cost() if worst_cost is not None else 0
                    tightest_budget = self._check_budgets(scope, counts, reserved, worst, tightest_budget, wall)
            limit = scope.limits.get("concurrent_requests")
            if limit is not None and self._active.get((scope.kind, scope.ident), 0) >= limit:
                raise self._rate_error(
                    family, scopes, now, 1.0, concurrency_message(limit, scope.kind), code="concurrency_limit_exceeded"
                )
        charges: list[tuple[tuple[str, str, str], float, str, Rate]] = []
        for scope in scopes:
            for name, slot, unit, limit, per_minute in scope.rates:
                cost = 1 if unit == "requests" else estimate
                allowed, new_tat, retry_after = gcra.take(self._bucket(slot, now, limit), now, cost, per_minute)
                if not allowed:
                    raise self._rate_error(
                        family, scopes, now, retry_after, rate_message(name, limit, scope.kind, retry_after),
                        code="rate_limit_exceeded",
                    )
                charges.append((slot, new_tat, unit, per_minute))
        # The answer's rate headers from the buckets as charged (what `headers` would read back from them).
        states: dict[str, RateState] = {}
        for slot, new_tat, unit, per_minute in charges:
            self._tat[slot] = new_tat
            left = gcra.remaining(new_tat, now, per_minute)
            tightest = states.get(unit)
            if tightest is None or left < tightest[1]:
                states[unit] = (per_minute.limit, left, gcra.reset_after(new_tat, now))
        for scope in scopes:
            ident = (scope.kind, scope.ident)
            self._active[ident] = self._active.get(ident, 0) + 1
            reserved = self._reserved.get(ident)
            if reserved is None:
                reserved = self._reserved[ident] = [0, 0, 0]
            reserved[0] += 1
            reserved[1] += estimate
            reserved[2] += worst or 0
        headers = rate_headers(states, family, wall)
        if worst and tightest_budget is not None:
            add_budget_headers(headers, tightest_budget[0], tightest_budget[2], wall)
        return Admission(scopes, estimate, headers, worst or 0)

    def charge(self, scopes: list[Scope], estimate: int, worst: int = 0) -> None:
        """Count a call the shared limiter admitted, unchecked: should this daemon have to count
        alone (Redis unreachable), it starts from what it let through, not from full buckets.
        `finish` settles it like any other."""
        now = self.clock.monotonic()
        for scope in scopes:
            for name, cost in (("requests_per_minute", 1), ("tokens_per_minute", estimate)):
                limit = scope.limits.get(name)
                if limit is not None:
                    slot = (scope.kind, scope.ident, name)
                    self._tat[slot] = gcra.adjust(self._bucket(slot, now, limit), now, min(cost, limit), rate(limit))
            ident = (scope.kind, scope.ident)
            self._active[ident] = self._active.get(ident, 0) + 1
            reserved = self._reserved.setdefault(ident, [0, 0, 0])
            reserved[0] += 1
            reserved[1] += estimate
            reserved[2] += worst

    def finish(self, admission: Admission, tokens_used: int) -> None:
        """Settle a call on every exit path: correct the token charge, free the slot.

        Called after the usage row is committed, so the period counters already hold the
        real tokens and the reservation can go. Safe to call twice.
        """
        if admission.finished:
            return
        admission.finished = True
        now = self.clock.monotonic()
        delta = tokens_used - admission.estimate
        for scope in admission.scopes:
            ident = (scope.kind, scope.ident)
            limit = scope.limits.get("tokens_per_minute")
            if limit is not None and delta:
                slot = (scope.kind, scope.ident, "tokens_per_minute")
                self._tat[slot] = gcra.adjust(self._bucket(slot, now, limit), now, delta, rate(limit))
            active = self._active.get(ident, 1) - 1
            if active > 0:
                self._active[ident] = active
            else:
                self._active.pop(ident, None)
            reserved = self._reserved.get(ident)
            if reserved is not None:
                reserved[0] -= 1
                reserved[1] -= admission.estimate
                reserved[2] -= admission.worst
                if reserved[0] <= 0:
                    del self._reserved[ident]

    def _bucket(self, slot: tuple[str, str, str], now: float, limit: int) -> float:
        """The slot's TAT under `limit`. When the limit changed (a plan change, new key
        overrides), the units already used carry over instead of the old spacing."""
        tat = self._tat.get(slot, 0.0)
        previous = self._limit_of.get(slot)
        if previous != limit:
            self._limit_of[slot] = limit
            if previous is not None and tat > now:
                tat = now + (tat - now) * previous / limit
                self._tat[slot] = tat
        return tat

    def forget(self, kind: str, ident: str) -> None:
        """Drop every in-memory count of an account or key (it was deleted)."""
        self._tat = {slot: tat for slot, tat in self._tat.items() if slot[:2] != (kind, ident)}
        self._limit_of = {slot: limit for slot, limit in self._limit_of.items() if slot[:2] != (kind, ident)}
        self._active.pop((kind, ident), None)
        self._reserved.pop((kind, ident), None)
        if kind == "account":
            self._account_scopes.pop(ident, None)
        self.counters.forget(kind, ident)

    async def forget_account(self, account: Account) -> None:
        """`AccountStore.on_account_deleted` hook: nothing of a deleted account stays counted."""
        self.forget("account", account.id)

    def in_flight(self, kind: str, ident: str) -> int:
        return self._active.get((kind, ident), 0)

    # -- checks and answers -----------------------------------------------------------

    def _check_budgets(
        self, scope: Scope, counts: PeriodCounts, reserved: Sequence[int], worst: int, tightest: tuple[int, int, str] | None,
        wall: float,
    ) -> tuple[int, int, str] | None:
        """Refuse unless spent + held worst cases + this call's worst case fits each budget of the scope.

        Returns the tightest budget so far as (left once this call's worst case is held, limit, period): the
        answer's budget headers, found in the same pass (each budget's spend is read once a call)."""
        held = reserved[2]
        for name, period, index, limit in scope.budgets:
            spent = counts[index][3] + held
            if spent + worst > limit:
                self.refused_by_budget(scope, name)
                raise budget_error(scope.kind, name, limit, period, wall, spent, worst)
            left = limit - spent - worst
            if tightest is None or left < tightest[0]:
                tightest = (left, limit, period)
        return tightest

    def refused_by_budget(self, scope: Scope, name: str) -> None:
        for listener in self.budget_refusals:
            listener(scope.kind, scope.ident, name)

    @staticmethod
    def _check_quotas(scope: Scope, counts: PeriodCounts, reserved: Sequence[int], wall: float) -> None:
        """Refuse once a day or month quota is used up, counting the calls in flight (`reserved`: requests,
        tokens, cost held, one place before the same figures in a period's counts)."""
        for name, period, index, unit, limit in scope.quotas:
            if counts[index][unit] + reserved[unit - 1] >= limit:
                raise quota_error(scope.kind, name, limit, period, wall)

    def _rate_error(
        self, family: str, scopes: list[Scope], now: float, retry_after: float, message: str, *, code: str
    ) -> GatewayError:
        return rate_error(self.headers(scopes, now, family), retry_after, message, code=code)

    def _tightest(self, scopes: list[Scope], name: str, now: float) -> tuple[int, int, float] | None:
        """(limit, remaining, seconds to full) of the scope with the least left for `name`."""
        best = None
        for scope in scopes:
            limit = scope.limits.get(name)
            if limit is None:
                continue
            per_minute = rate(limit)
            tat = self._bucket((scope.kind, scope.ident, name), now, limit)
            candidate = (limit, gcra.remaining(tat, now, per_minute), gcra.reset_after(tat, now))
            if best is None or candidate[1] < best[1]:
                best = candidate
        return best

    def headers(self, scopes: list[Scope], now: float, family: str) -> dict[str, str]:
        """Rate-limit headers in the caller's dialect from the buckets as they are (a refused call's answer;
        an admitted one's come from its charges, in `admit`)."""
        states = {unit: state for name, unit in RATE_LIMITS if (state := self._tightest(scopes, name, now)) is not None}
        return rate_headers(states, family, self.clock.now())

    # -- status for people ------------------------------------------------------------

    async def report(self, key: ApiKey | None, account: Account) -> list[dict]:
        """`status`, read from the shared counters while limits are shared in Redis."""
        if self.shared is not None:
            rows = await self.shared.status(key, account)
            if rows is not None:
                return rows
        return self.status(key, account)

    def status(self, key: ApiKey | None, account: Account) -> list[dict]:
        """Every limit that applies, with used, remaining and reset time (UTC)."""
        now, wall = self.clock.monotonic(), self.clock.now()
        rows = []
        for scope in self.scopes(key or NO_KEY, account):
            rates = {}
            for name in ("requests_per_minute", "tokens_per_minute"):
                if (limit := scope.limits.get(name)) is not None:
                    tat = self._bucket((scope.kind, scope.ident, name), now, limit)
                    rates[name] = (gcra.remaining(tat, now, rate(limit)), gcra.reset_after(tat, now))
            periods = {
                period: (*self.counters.used(scope.kind, scope.ident, period), self.counters.spent(scope.kind, scope.ident, period))
                for period in ("day", "month")
            }
            rows += status_rows(scope, wall, rates, self.in_flight(scope.kind, scope.ident), periods)
        return rows


def status_rows(
    scope: Scope, wall: float, rates: dict[str, tuple[int, float]], in_flight: int, periods: dict[str, tuple[int, int]]
) -> list[dict]:
    """A scope's rows of a quota report, from its counts (in memory or in Redis): `rates` maps a rate
    limit to (remaining, seconds to full), `periods` a period to its (requests, tokens, spend in picounits).
    Budgets are shown in the currency."""
    rows = []
    for name, limit in scope.limits.items():
        resets: float | None = None
        if name in rates:
            left, reset_after = rates[name]
            used, resets = limit - left, wall + reset_after
        elif name == "concurrent_requests":
            used = in_flight
            left = max(0, limit - used)
        else:
            period = "month" if name.endswith("month") else "day"
            requests, tokens, spent = periods[period]
            used = requests if name.startswith("requests") else spent if name.startswith("budget_") else tokens
            left, resets = max(0, limit - used), period_bounds(period, wall)[1]
        if name.startswith("budget_"):
            limit, used, left = amount(limit), amount(used), amount(left)
        rows.append(
            {
                "scope": scope.kind,
                "scope_id": scope.ident,
                "limit": name,
                "value": limit,
                "used": used,
                "remaining": left,
                "resets_at": rfc3339(resets) if resets is not None else None,
            }
        )
    return rows


NO_KEY = ApiKey(id="", account_id="", key_hash="", prefix="")
"""A key with no overrides, for an account's own status."""
