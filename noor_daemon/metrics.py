"""GET /metrics in Prometheus text format: aggregates per model and provider only.

Never an account, a key or an email: a metrics scraper is not someone who may learn who
is calling. Counters are fed from committed ledger batches, off the request path.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from noor_daemon.config import ServerConfig
from noor_daemon.domain.money import UNIT
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.tls import is_loopback

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _LiveState(Collector):
    """Route breaker states and ledger health, read at scrape time."""

    def __init__(self, routes: Callable[[], list[dict]], ledger: Ledger) -> None:
        self._routes = routes
        self._ledger = ledger

    def collect(self) -> Iterable[Metric]:
        state = GaugeMetricFamily("noor_route_state", "1 for the route's current breaker state", labels=["provider", "model", "state"])
        failures = GaugeMetricFamily(
            "noor_route_consecutive_failures", "Consecutive failed attempts per route", labels=["provider", "model"]
        )
        errors = GaugeMetricFamily("noor_route_error_rate", "Moving error rate per route (0..1)", labels=["provider", "model"])
        for row in self._routes():
            for name in ("closed", "open", "half_open"):
                state.add_metric([row["provider"], row["model"], name], 1.0 if row["state"] == name else 0.0)
            failures.add_metric([row["provider"], row["model"]], row["consecutive_failures"])
            errors.add_metric([row["provider"], row["model"]], row["error_rate"])
        yield state
        yield failures
        yield errors
        yield GaugeMetricFamily("noor_ledger_healthy", "1 while usage rows commit", value=1.0 if self._ledger.healthy else 0.0)
        yield CounterMetricFamily("noor_ledger_batches", "Group commits of usage rows", value=self._ledger.batches_committed)
        yield CounterMetricFamily("noor_ledger_events", "Usage rows committed", value=self._ledger.events_committed)


class _UpstreamConnections(Collector):
    """Each provider's connections and the calls that waited for one (`max_connections`), read at scrape time."""

    def __init__(self, stats: Callable[[], list[dict]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        rows = self._stats()
        families = (
            (GaugeMetricFamily, "noor_upstream_connections_open", "Connections open to the provider (at most max_connections)", "open"),
            (GaugeMetricFamily, "noor_upstream_connections_idle", "Of those, idle and kept for reuse", "idle"),
            (GaugeMetricFamily, "noor_upstream_connection_waiting", "Calls waiting now for a free connection", "waiting"),
            (CounterMetricFamily, "noor_upstream_connection_waits", "Calls that found every connection busy and waited", "waits"),
            (CounterMetricFamily, "noor_upstream_connection_wait_seconds", "Seconds calls spent waiting for a free connection", "wait_seconds"),
            (CounterMetricFamily, "noor_upstream_connection_wait_timeouts", "Calls that waited the whole connect timeout in vain", "wait_timeouts"),
            (CounterMetricFamily, "noor_upstream_retries", "Calls sent again on a fresh connection after the server closed a reused one", "retries"),
        )
        for family, name, text, field in families:
            metric = family(name, text, labels=["provider"])
            for row in rows:
                metric.add_metric([row["provider"]], row[field])
            yield metric


class Metrics:
    def __init__(
        self,
        routes: Callable[[], list[dict]],
        ledger: Ledger,
        connections: Callable[[], list[dict]] | None = None,
        *,
        server: Callable[[], ServerConfig] = ServerConfig,
        token: str | None = None,
    ) -> None:
        self.server = server
        """The `[server]` section in effect: a reload changes who may scrape."""
        self.token_digest = hashlib.sha256(token.encode()).digest() if token else None
        """SHA-256 of `[server] metrics_token`, resolved at start."""
        self.registry = CollectorRegistry()
        labels = ["model", "provider"]
        self.requests = Counter(
            "noor_requests", "Metered calls", [*labels, "endpoint", "status"], registry=self.registry
        )
        self.tokens = Counter("noor_tokens", "Tokens metered", [*labels, "kind"], registry=self.registry)
        self.cost = Counter(
            "noor_cost", "Estimated cost of metered calls, in the [budgets] currency, at the price table", labels,
            registry=self.registry,
        )
        self.unpriced = Counter(
            "noor_unpriced_calls", "Calls that used tokens of a model with no price", labels, registry=self.registry
        )
        self.latency = Histogram(
            "noor_request_latency_seconds", "Whole-call latency", labels, buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.ttft = Histogram(
            "noor_time_to_first_token_seconds", "Time to the first streamed event", labels, buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LiveState(routes, ledger))
        if connections is not None:
            self.registry.register(_UpstreamConnections(connections))
        self._children: dict[tuple, object] = {}
        """Labelled children already made: `labels()` validates and locks on every call, and every
        committed event would pay that up to five times."""

    def _child(self, metric, *labels: str):
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child

    def on_commit(self, events: list[UsageEvent]) -> None:
        """Ledger listener: count what was committed."""
        child = self._child
        for event in events:
            model, provider = event.model or "-", event.provider or "-"
            child(self.requests, model, provider, event.endpoint, str(event.status)).inc()
            if event.prompt_tokens:
                child(self.tokens, model, provider, "prompt").inc(event.prompt_tokens)
            if event.completion_tokens:
                child(self.tokens, model, provider, "completion").inc(event.completion_tokens)
            if event.cost:
                child(self.cost, model, provider).inc(event.cost / UNIT)
            elif event.cost is None and event.total_tokens:
                child(self.unpriced, model, provider).inc()
            child(self.latency, model, provider).observe(event.latency_ms / 1000)
            if event.ttft_ms is not None:
                child(self.ttft, model, provider).observe(event.ttft_ms / 1000)

    async def handler(self, request: web.Request) -> web.Response:
        refusal = self.refusal(request)
        if refusal is not None:
            return web.json_response({"error": {"status": 403, "code": "forbidden", "message": refusal}}, status=403)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def refusal(self, request: web.Request) -> str | None:
        """Why `request` may not read /metrics, or None: loopback always may; others only with
        `[server] metrics_remote` over TLS, and with the metrics token when one is set."""
        if is_loopback(request.remote):
            return None
        if not self.server().metrics_remote:
            return "/metrics answers clients on this machine only ([server] metrics_remote)."
        if not request.secure:
            return "/metrics answers remote scrapers over TLS only."
        if self.token_digest is not None:
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            digest = hashlib.sha256(presented.strip().encode()).digest()
            if scheme.lower() != "bearer" or not hmac.compare_digest(digest, self.token_digest):
                return "/metrics needs its bearer token ([server] metrics_token)."
        return None
