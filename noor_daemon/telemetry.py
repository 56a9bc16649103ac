"""OpenTelemetry (the optional `otel` extra): a trace of each call and GenAI metrics, exported over OTLP/HTTP.

Off unless the config has a `[telemetry]` section; then the request path's code is still the same: the spans
come from wrapping the steps of the proxy on their instances at start (auth, limits, route, upstream, meter,
inside one server span per call), and the metrics from the ledger's committed usage rows, after the answer
went out. Export runs on the SDK's own threads. What leaves the machine: endpoint, model and provider names,
status, token counts, latency and time to first token. Never content (nothing here reads a body), never an
exception's message (its type or status only), never an account or key id unless the operator opts in to
`hashed_ids` (then a SHA-256 prefix, stable and not reversible).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from noor_daemon import __version__
from noor_daemon.config import Config, ConfigError, TelemetryConfig
from noor_daemon.secret_store import resolve

OPERATIONS = {
    "chat/completions": "chat", "messages": "chat", "responses": "chat",
    "completions": "text_completion", "embeddings": "embeddings", "messages/count_tokens": "count_tokens",
}
"""Each endpoint's `gen_ai.operation.name` (GenAI semantic conventions; counting tokens is ours)."""

PROVIDER_NAMES = {"azure": "azure.ai.openai", "gemini": "gcp.gemini", "mistral": "mistral_ai"}
"""`gen_ai.provider.name` where the conventions' well-known value differs from the provider kind."""

TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
"""The bucket boundaries the GenAI conventions advise for token counts, durations and time to first token."""

_CALL: ContextVar[tuple[Any, Any] | None] = ContextVar("noor_call", default=None)
"""The server span of the call this task serves and its context; the steps make child spans only inside one.
Spans are started with an explicit parent, never made "current": nothing below the proxy is instrumented, so
OpenTelemetry's own context needs no attach and detach per step."""


def hashed_id(value: str) -> str:
    return hashlib.sha256(f"noorapi:{value}".encode()).hexdigest()[:16]


class Telemetry:
    """The tracer and meter providers of one daemon, and the wrappers that trace its steps."""

    def __init__(self, settings: TelemetryConfig, config: Config) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        except ImportError:
            raise ConfigError("[telemetry] needs the otel extra: pip install 'noorapi[otel]'") from None
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.settings = settings
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        headers = {name: resolve(ref, what=f"[telemetry] headers.{name}") or "" for name, ref in settings.headers.items()}
        base = settings.endpoint.rstrip("/")
        resource = Resource.create({"service.name": settings.service_name, "service.version": __version__})
        interval_ms = settings.export_interval * 1000
        self.tracer_provider = self.meter_provider = None
        if settings.traces:
            self.tracer_provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers), schedule_delay_millis=interval_ms)
            )
            self.tracer = self.tracer_provider.get_tracer("noorapi", __version__)
        if settings.metrics:
            reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers), export_interval_millis=interval_ms
            )
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
            meter = self.meter_provider.get_meter("noorapi", __version__)
            self.token_usage = meter.create_histogram(
                "gen_ai.client.token.usage", "{token}", "Tokens used by each call, by type (input, output).",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
            self.duration = meter.create_histogram(
                "gen_ai.client.operation.duration", "s", "Each call's duration, from arrival to its last byte.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
            self.ttft = meter.create_histogram(
                "gen_ai.server.time_to_first_token", "s", "Time to the first streamed event of each streamed call.",
                explicit_bucket_boundaries_advisory=TTFT_BUCKETS)
        self.providers: dict[str, str] = {}
        self._labels: dict[tuple, tuple[dict, dict, dict]] = {}
        self.follow(config)

    def follow(self, config: Config) -> None:
        """The providers of the config in force (a reload may change them): name → `gen_ai.provider.name`."""
        self.providers = {p.name: PROVIDER_NAMES.get(p.kind, p.kind) for p in config.providers}
        self._labels.clear()

    # -- spans ---------------------------------------------------------------------------------------

    def instrument(self, proxy: Any, limiter: Any) -> None:
        """Trace the proxy's steps on these instances; their classes, and every other daemon in the process, stay as they are."""
        if self.tracer_provider is None:
            return
        proxy.handle = self._traced_call(proxy.handle)
        proxy.guarded_authenticate = self._step("auth", proxy.guarded_authenticate)
        proxy.meter = self._traced_meter(proxy.meter)
        limiter.admit = self._step("limits", limiter.admit)
        if limiter.shared is not None:
            limiter.shared.admit = self._async_step("limits", limiter.shared.admit)

    def instrument_routing(self, router: Any, upstreams: Mapping[str, Any], config: Config) -> None:
        """The router and upstreams made at start and at each reload."""
        self.follow(config)
        if self.tracer_provider is None:
            return
        router.routes = self._step("route", router.routes)
        for upstream in upstreams.values():
            upstream.send = self._traced_send(upstream.name, upstream.send)

    def _traced_call(self, handle: Callable[..., Awaitable[web.StreamResponse]]) -> Callable[..., Awaitable[web.StreamResponse]]:
        from opentelemetry.trace import SpanKind, StatusCode

        tracer, propagator, set_span_in_context = self.tracer, self._propagator, self._trace.set_span_in_context

        async def traced(request: web.Request, wire: Any) -> web.StreamResponse:
            route = f"/v1/{wire.path}"
            parent = propagator.extract(request.headers) if "traceparent" in request.headers else None  # the caller's trace
            span = tracer.start_span(
                f"{request.method} {route}", context=parent, kind=SpanKind.SERVER, record_exception=False,
                set_status_on_exception=False, attributes={
                    "http.request.method": request.method, "http.route": route,
                    "gen_ai.operation.name": OPERATIONS.get(wire.path, wire.path)},
            )
            token = _CALL.set((span, set_span_in_context(span)))
            try:
                response = await handle(request, wire)
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(StatusCode.ERROR)
                span.end()
                raise
            finally:
                _CALL.reset(token)
            status = response.status
            if status >= 400:
                span.set_attributes({"http.response.status_code": status, "error.type": str(status)})
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            else:
                span.set_attribute("http.response.status_code", status)
            span.end()
            return response

        return traced

    def _step(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        tracer = self.tracer

        def traced(*args: Any, **kwargs: Any) -> Any:
            call = _CALL.get()
            if call is None:  # not inside a call (a quota report, a probe): untraced
                return function(*args, **kwargs)
            span = tracer.start_span(name, context=call[1], record_exception=False, set_status_on_exception=False)
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                _refused(span, exc)
                raise
            finally:
                span.end()

        return traced

    def _async_step(self, name: str, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        tracer = self.tracer

        async def traced(*args: Any, **kwargs: Any) -> Any:
            call = _CALL.get()
            if call is None:
                return await function(*args, **kwargs)
            span = tracer.start_span(name, context=call[1], record_exception=False, set_status_on_exception=False)
            try:
                return await function(*args, **kwargs)
            except Exception as exc:
                _refused(span, exc)
                raise
            finally:
                span.end()

        return traced

    def _traced_send(self, provider: str, send: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """The upstream call as a GenAI client span (`chat gpt-4o-mini`), until the provider's answer begins."""
        from opentelemetry.trace import SpanKind

        tracer = self.tracer

        async def traced(endpoint: str, *args: Any, **kwargs: Any) -> Any:
            call = _CALL.get()
            if call is None:
                return await send(endpoint, *args, **kwargs)
            model = kwargs.get("model", args[3] if len(args) > 3 else None)  # the route's name for it, from the config
            operation = OPERATIONS.get(endpoint, endpoint)
            attributes = {"gen_ai.operation.name": operation, "gen_ai.provider.name": self.providers.get(provider, provider),
                          "noor.provider": provider}
            if model:
                attributes["gen_ai.request.model"] = model
            span = tracer.start_span(f"{operation} {model}" if model else operation, context=call[1], kind=SpanKind.CLIENT,
                                     attributes=attributes, record_exception=False, set_status_on_exception=False)
            try:
                reply = await send(endpoint, *args, **kwargs)
            except Exception as exc:
                _refused(span, exc)
                span.end()
                raise
            if reply.status >= 400:
                span.set_attributes({"http.response.status_code": reply.status, "error.type": str(reply.status)})
            else:
                span.set_attribute("http.response.status_code", reply.status)
            span.end()
            return reply

        return traced

    def _traced_meter(self, meter: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        tracer = self.tracer

        async def traced(call: Any, **kwargs: Any) -> None:
            current = _CALL.get()
            if current is None:
                return await meter(call, **kwargs)
            current[0].set_attributes(self._outcome(call))  # the call is whole now: its outcome goes on the server span
            span = tracer.start_span("meter", context=current[1], record_exception=False, set_status_on_exception=False)
            try:
                return await meter(call, **kwargs)
            except Exception as exc:
                _refused(span, exc)
                raise
            finally:
                span.end()

        return traced

    def _outcome(self, call: Any) -> dict[str, Any]:
        outcome = {
            "gen_ai.request.model": call.model,
            "gen_ai.usage.input_tokens": call.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": call.usage.completion_tokens,
            "noor.stream": call.stream,
            "noor.usage.estimated": call.estimated,
        }
        if call.provider:
            outcome["gen_ai.provider.name"] = self.providers.get(call.provider, call.provider)
            outcome["noor.provider"] = call.provider
        if call.ttft_ms is not None:
            outcome["noor.time_to_first_token_ms"] = round(call.ttft_ms, 3)
        if self.settings.hashed_ids and call.key is not None:  # the operator's choice: pseudonymous ids, never the ids
            outcome["noor.account.id_hash"] = hashed_id(call.key.account_id)
            outcome["noor.key.id_hash"] = hashed_id(call.key.id)
        return outcome

    # -- metrics -------------------------------------------------------------------------------------

    def on_commit(self, events: list[Any]) -> None:
        """A ledger commit listener: each committed call into the GenAI histograms (off the request path)."""
        if self.meter_provider is None:
            return
        for event in events:
            error = str(event.status) if event.status >= 400 else None
            labels = self._labels.get((event.endpoint, event.model, event.provider, error))
            if labels is None:
                labels = self._labels_of(event.endpoint, event.model, event.provider, error)
            self.duration.record(event.latency_ms / 1000, labels[0])
            if error is None:
                self.token_usage.record(event.prompt_tokens, labels[1])
                self.token_usage.record(event.completion_tokens, labels[2])
            if event.ttft_ms is not None:
                self.ttft.record(event.ttft_ms / 1000, labels[0])

    def _labels_of(self, endpoint: str, model: str, provider: str | None, error: str | None) -> tuple[dict, dict, dict]:
        """The attribute sets of one (endpoint, model, provider, error) — made once, as most calls repeat them."""
        attributes = {"gen_ai.operation.name": OPERATIONS.get(endpoint, endpoint), "gen_ai.request.model": model}
        if provider:
            attributes["gen_ai.provider.name"] = self.providers.get(provider, provider)
            attributes["noor.provider"] = provider
        if error is not None:
            attributes["error.type"] = error
        labels = (attributes, {**attributes, "gen_ai.token.type": "input"}, {**attributes, "gen_ai.token.type": "output"})
        if len(self._labels) >= 4096:  # model names matching a pattern are the callers' to invent
            self._labels.clear()
        self._labels[(endpoint, model, provider, error)] = labels
        return labels

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: at shutdown, what is still queued is exported (on a thread: the SDK's exporters block)."""
        yield
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                await asyncio.to_thread(provider.shutdown)


def _refused(span: Any, exc: BaseException) -> None:
    """A step that raised: its status code when it is the gateway's answer (429, 401…), else the exception's type."""
    status = getattr(exc, "status", None)
    span.set_attribute("error.type", str(status) if isinstance(status, int) else type(exc).__name__)


def start_telemetry(config: Config) -> Telemetry | None:
    """The daemon's telemetry, or None without `[telemetry]` (then nothing is wrapped and nothing is imported)."""
    return Telemetry(config.telemetry, config) if config.telemetry is not None else None


TELEMETRY = web.AppKey("telemetry", Telemetry)
"""Set only when telemetry is on; a reload hands it the new router and upstreams."""
