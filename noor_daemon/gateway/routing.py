"""From the model name a client sends to the upstreams that may serve it, best first.

Each route keeps a circuit breaker and moving aggregates of its own latency and errors.
They carry no account identity: routing learns from the traffic as a whole.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from noor_daemon.clock import Clock
from noor_daemon.config import Config, ModelConfig, RoutingConfig
from noor_daemon.domain import errors
from noor_daemon.domain.names import is_model_name
from noor_daemon.gateway.provider_errors import Scrubber
from noor_daemon.gateway.upstreams import Upstream
from noor_daemon.presets import CONVERSATION_FORMATS, FORMAT_PATHS

log = logging.getLogger(__name__)

CONVERSATIONS = frozenset(FORMAT_PATHS[f] for f in CONVERSATION_FORMATS)
"""Chat Completions, Responses and Messages: a provider serving one of them answers all three (translated)."""


def answers(upstream: Upstream, endpoint: str) -> bool:
    """Can `upstream` answer a call to `endpoint`: as it is, translated, or (token counts) by the gateway's estimate?"""
    if endpoint in upstream.formats:
        return True
    if endpoint in CONVERSATIONS:
        return not upstream.formats.isdisjoint(CONVERSATIONS)
    return endpoint == "messages/count_tokens"

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class RouteHealth:
    """A circuit breaker and moving aggregates for one (provider, upstream model) pair."""

    failures_to_open: int
    cooldown: float
    state: str = CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    ttft_ms: float | None = None
    """Exponentially weighted time to first token (or to the whole answer when not streaming)."""
    error_rate: float = 0.0
    requests: int = 0
    failures: int = 0
    ALPHA = 0.2

    def available(self, now: float) -> bool:
        """May a call go this way now? An open breaker lets one probe through after its cool-down."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and now - self.opened_at >= self.cooldown:
            self.state = HALF_OPEN
            self.probing = False
        if self.state == HALF_OPEN and not self.probing:
            return True
        return False

    def on_attempt(self) -> None:
        if self.state == HALF_OPEN:
            self.probing = True

    def on_success(self, latency_ms: float | None) -> None:
        self.requests += 1
        self.consecutive_failures = 0
        self.state, self.probing = CLOSED, False
        self.error_rate += self.ALPHA * (0.0 - self.error_rate)
        if latency_ms is not None:
            self.ttft_ms = latency_ms if self.ttft_ms is None else self.ttft_ms + self.ALPHA * (latency_ms - self.ttft_ms)

    def on_failure(self, now: float) -> None:
        self.requests += 1
        self.failures += 1
        self.consecutive_failures += 1
        self.error_rate += self.ALPHA * (1.0 - self.error_rate)
        if self.state == HALF_OPEN or self.consecutive_failures >= self.failures_to_open:
            self.state, self.opened_at, self.probing = OPEN, now, False


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream
    model: str
    """The model name the upstream knows it by."""
    health: RouteHealth = field(compare=False, hash=False)
    weight: float = 1.0
    priority: int = 0

    @property
    def label(self) -> str:
        return f"{self.upstream.name}/{self.model}"


@dataclass
class _ModelRoutes:
    config: ModelConfig
    routes: list[tuple[Upstream, str | None, float, int]]
    """(upstream, upstream model or None for "as sent", weight, priority)."""


_CANDIDATES_KEPT = 4096


class Router:
    def __init__(
        self,
        config: Config,
        upstreams: dict[str, Upstream],
        clock: Clock | None = None,
        health: dict[tuple[str, str], RouteHealth] | None = None,
    ) -> None:
        self.settings: RoutingConfig = config.routing
        self.clock = clock or Clock()
        self._upstreams = upstreams
        self.health: dict[tuple[str, str], RouteHealth] = health if health is not None else {}
        """Breakers by (provider, upstream model); handed on across a config reload."""
        self._exact: dict[str, _ModelRoutes] = {}
        self._patterns: list[tuple[str, _ModelRoutes]] = []
        self._rng = random.Random()
        self._candidates: dict[tuple[str, str], tuple[_ModelRoutes, list[Route]]] = {}
        """Each (model, endpoint)'s routes, made once: a Route's parts never change in one Router."""
        self.scrub = Scrubber(tuple(secret for upstream in upstreams.values() for secret in upstream.secrets if secret))
        """Removes every provider's credentials (and key-shaped strings) from provider error text the gateway relays."""
        for model in config.models:
            entry = _ModelRoutes(
                model, [(upstreams[r.provider], r.model, r.weight, r.priority) for r in model.routes]
            )
            for route in model.routes:
                if route.model is not None:
                    self._health(route.provider, route.model)  # known from the start, for status pages
            for name in (model.name, *model.aliases):
                if "*" in name or "?" in name:
                    self._patterns.append((name, entry))
                else:
                    self._exact[name] = entry

    @property
    def model_names(self) -> list[str]:
        """Names a client can send as they are (patterns are not listed)."""
        return list(self._exact)

    def knows(self, model: str) -> bool:
        return self._lookup(model) is not None

    def _lookup(self, model: str) -> _ModelRoutes | None:
        entry = self._exact.get(model)
        if entry is not None:
            return entry
        if not is_model_name(model):  # a pattern admits names of a model name's shape only
            return None
        for pattern, candidate in self._patterns:
            if fnmatch.fnmatchcase(model, pattern):
                return candidate
        return None

    def _health(self, provider: str, model: str) -> RouteHealth:
        key = (provider, model)
        health = self.health.get(key)
        if health is None:
            health = self.health[key] = RouteHealth(self.settings.breaker_failures, self.settings.breaker_cooldown)
        return health

    def routes(self, model: str, endpoint: str) -> list[Route]:
        """The routes to try for `model` at `endpoint` (under /v1), in order, at most `max_attempts` of them.

        A route whose provider cannot answer the endpoint, even translated, is left out; so are routes
        whose breaker is open; if that leaves none, the call fails fast with 503 instead of waiting on
        an upstream known to be down.
        """
        cached = self._candidates.get((model, endpoint))
        if cached is None:
            entry = self._lookup(model)
            if entry is None:
                raise errors.unknown_model(model)
            candidates = [
                Route(up, name := (target or model), self._health(up.name, name), weight, priority)
                for up, target, weight, priority in entry.routes
                if answers(up, endpoint)
            ]
            if len(self._candidates) >= _CANDIDATES_KEPT:  # names matching a pattern are the caller's to invent
                self._candidates.clear()
            cached = self._candidates[(model, endpoint)] = (entry, candidates)
        entry, candidates = cached
        if not candidates:
            raise errors.bad_request(
                f"The model `{model}` is served by a provider that does not serve /v1/{endpoint}.",
                param="model",
                code="model_api_mismatch",
            )
        now = self.clock.monotonic()
        healthy = [r for r in candidates if r.health.available(now)]
        if not healthy:
            raise errors.upstream_failed(
                ", ".join(sorted({r.upstream.name for r in candidates})),
                503,
                "every route for this model is failing (circuit open); retry shortly",
            )
        return self._order(entry.config.strategy, healthy)[: self.settings.max_attempts]

    def _order(self, strategy: str, routes: list[Route]) -> list[Route]:
        if len(routes) == 1:  # most models have one route: nothing to order
            return routes
        if strategy == "weighted":
            ordered, pool = [], list(routes)
            while pool:
                pick = self._rng.choices(pool, weights=[r.weight for r in pool])[0]
                ordered.append(pick)
                pool.remove(pick)
            return ordered
        if strategy == "latency":
            # Unmeasured routes go first so that every route gets measured.
            return sorted(routes, key=lambda r: (r.health.ttft_ms is not None, r.health.ttft_ms or 0.0, r.priority))
        return sorted(routes, key=lambda r: r.priority)

    async def check_open_routes(self) -> int:
        """Active health checks: probe each provider with an open breaker; close it if it answers.

        Returns how many routes were closed again. Probes go to the provider (its model list),
        never through a client's call.
        """
        now = self.clock.monotonic()
        closed = 0
        for (provider, _model), health in list(self.health.items()):
            upstream = self._upstreams.get(provider)
            if health.state == CLOSED or upstream is None:
                continue
            if await upstream.probe():
                health.on_success(None)
                closed += 1
            else:
                health.on_failure(now)
        return closed

    def snapshot(self) -> list[dict]:
        """Route states for the admin API, /metrics and the dashboard."""
        now = self.clock.monotonic()
        rows = []
        for (provider, model), health in sorted(self.health.items()):
            health.available(now)  # moves an expired open breaker to half-open
            rows.append(
                {
                    "provider": provider,
                    "model": model,
                    "state": health.state,
                    "consecutive_failures": health.consecutive_failures,
                    "ttft_ms": round(health.ttft_ms, 3) if health.ttft_ms is not None else None,
                    "error_rate": round(health.error_rate, 4),
                    "requests": health.requests,
                    "failures": health.failures,
                }
            )
        return rows


async def health_check_loop(get_router: Callable[[], Router], interval: float) -> None:
    """Every `interval` seconds, probe the providers behind open breakers (cleanup_ctx task)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await get_router().check_open_routes()
        except Exception as exc:  # a probe must never take the daemon down
            log.warning("active health check failed: %s", type(exc).__name__)
