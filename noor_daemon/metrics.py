"""GET /metrics in Prometheus text format: aggregates per model and provider only.

Never an account, a key or an email: a metrics scraper is not someone who may learn who
is calling. Counters are fed from committed ledger batches, off the request path.
"""

from __future__ import annotations

import hashlib
import hmac
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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


class _Histogram:
    """One label set's latency histogram: a count per bucket (the last one +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # the first bucket whose bound is >= the value
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append((floatToGoString(bound), running))
        return out


class _CallTallies(Collector):
    """What committed calls add up to, per model and provider, kept in plain dicts and turned into metric
    families at scrape time. prometheus_client's own counters validate and lock on every increment: a
    committed call paid that five times, ~16 us of a lone call's CPU (issue #23). Written and read on the
    event loop only (the ledger's listeners and the /metrics handler), so no lock is needed."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.cost: defaultdict[tuple[str, str], int] = defaultdict(int)
        """Picounits: exact however many calls are added; shown in the currency."""
        self.unpriced: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.latency: defaultdict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self.ttft: defaultdict[tuple[str, str], _Histogram] = defaultdict(_Histogram)

    def add(self, events: list[UsageEvent]) -> None:
        for event in events:
            pair = (event.model or "-", event.provider or "-")
            self.requests[(*pair, event.endpoint, str(event.status))] += 1
            if event.prompt_tokens:
                self.tokens[(*pair, "prompt")] += event.prompt_tokens
            if event.completion_tokens:
                self.tokens[(*pair, "completion")] += event.completion_tokens
            if event.cost:
                self.cost[pair] += event.cost
            elif event.cost is None and event.total_tokens:
                self.unpriced[pair] += 1
            self.latency[pair].observe(event.latency_ms / 1000)
            if event.ttft_ms is not None:
                self.ttft[pair].observe(event.ttft_ms / 1000)

    def collect(self) -> Iterable[Metric]:
        labels = ["model", "provider"]
        counters = (
            ("noor_requests", "Metered calls", [*labels, "endpoint", "status"], self.requests, 1),
            ("noor_tokens", "Tokens metered", [*labels, "kind"], self.tokens, 1),
            ("noor_cost", "Estimated cost of metered calls, in the [budgets] currency, at the price table", labels,
             self.cost, UNIT),
            ("noor_unpriced_calls", "Calls that used tokens of a model with no price", labels, self.unpriced, 1),
        )
        for name, text, names, values, unit in counters:
            family = CounterMetricFamily(name, text, labels=names)
            for key, value in values.items():
                family.add_metric(list(key), value / unit if unit != 1 else value)
            yield family
        histograms = (
            ("noor_request_latency_seconds", "Whole-call latency", self.latency),
            ("noor_time_to_first_token_seconds", "Time to the first streamed event", self.ttft),
        )
        for name, text, values in histograms:
            family = HistogramMetricFamily(name, text, labels=labels)
            for key, histogram in values.items():
                family.add_metric(list(key), histogram.cumulative(), histogram.total)
            yield family


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
        self.ledger = ledger
        self.token_digest = hashlib.sha256(token.encode()).digest() if token else None
        """SHA-256 of `[server] metrics_token`, resolved at start."""
        self.registry = CollectorRegistry()
        self.calls = _CallTallies()
        self.registry.register(self.calls)
        self.registry.register(_LiveState(routes, ledger))
        if connections is not None:
            self.registry.register(_UpstreamConnections(connections))

    def on_commit(self, events: list[UsageEvent]) -> None:
        """Ledger listener: count what was committed."""
        self.calls.add(events)

    async def handler(self, request: web.Request) -> web.Response:
        refusal = self.refusal(request)
        if refusal is not None:
            return web.json_response({"error": {"status": 403, "code": "forbidden", "message": refusal}}, status=403)
        self.ledger.publish()  # calls committed alone are counted in batches: every one of them, before a scrape
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
