"""The request path: auth → body → route → upstream → stream back → meter.

Nothing here waits on anything slow but the upstream: the key lookup is a dict, and the
only ledger wait is the group commit that makes a response's usage row durable before
its final bytes go out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

import orjson
from aiohttp import web

from noor_daemon.clock import Clock
from noor_daemon.config import Config
from noor_daemon.domain import errors
from noor_daemon.domain.accounts import ApiKey, KeyRing
from noor_daemon.domain.errors import GatewayError
from noor_daemon.domain.money import DEFAULT_MAX_OUTPUT, PriceBook
from noor_daemon.domain.names import UNKNOWN_MODEL
from noor_daemon.gateway import translate
from noor_daemon.gateway.answers import EventStream, whole_answer
from noor_daemon.gateway.provider_errors import relay_answer, sanitize_stream_error
from noor_daemon.gateway.routing import Route, Router
from noor_daemon.gateway.translate.ir import Target, Untranslatable
from noor_daemon.gateway.upstreams import UpstreamReply
from noor_daemon.gateway.wire import WIRES, Outgoing, Wire
from noor_daemon.gateway.wire.meter import StreamMeter, Usage, estimate_tokens, stream_usage
from noor_daemon.gateway.wire.sse import EventSplitter
from noor_daemon.ledger.audit import AuditEntry
from noor_daemon.ledger.database import Ledger, LedgerUnavailable
from noor_daemon.ledger.usage import RouteSample, UsageEvent
from noor_daemon.limits.abuse import AuthFailures, SpikeDetector
from noor_daemon.limits.enforcer import Admission, Limiter

log = logging.getLogger(__name__)

_BIG_WRITE = 16 * 1024
"""A write this large may fill the socket by itself, so it gets a timeout even to a client
that was keeping up (one with bytes still unsent always does)."""

CLIENT_CLOSED = 499  # nginx's convention: the client went away before the answer was whole


class Call:
    """Everything the ledger will learn about one call, filled in as it proceeds."""

    __slots__ = (
        "ts", "started", "endpoint", "key", "model", "provider", "status", "usage", "ttft_ms", "stream", "estimated",
        "metered", "priced_model",
    )

    def __init__(self, endpoint: str, ts: int) -> None:
        self.ts = ts
        self.started = time.perf_counter()
        self.endpoint = endpoint
        self.key: ApiKey | None = None
        self.model = UNKNOWN_MODEL
        """Until a route resolves the caller's model name; a call refused before that is recorded under this label."""
        self.provider: str | None = None
        self.status = 500
        self.usage = Usage()
        self.ttft_ms: float | None = None
        self.stream = False
        self.estimated = False
        self.metered = False
        self.priced_model: str | None = None
        """The model as the provider that answered names it: what its price is looked up by."""

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def conclude(self, status: int, usage: Usage | None = None, *, estimated: bool = False) -> None:
        """The call's outcome, set once where it is decided: the status the ledger records and the tokens it cost."""
        self.status = status
        self.usage = usage if usage is not None else Usage()
        self.estimated = estimated

    def event(self) -> UsageEvent:
        return UsageEvent(
            ts=self.ts,
            model=self.model,
            endpoint=self.endpoint,
            status=self.status,
            latency_ms=round(self.elapsed_ms(), 3),
            account_id=self.key.account_id if self.key else None,
            key_id=self.key.id if self.key else None,
            provider=self.provider,
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            ttft_ms=round(self.ttft_ms, 3) if self.ttft_ms is not None else None,
            stream=self.stream,
            estimated=self.estimated,
            cached_tokens=self.usage.cached_tokens,
            cache_write_tokens=self.usage.cache_write_tokens,
        )


def presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def token_estimate(raw: bytes, payload: dict) -> int:
    """What a call may cost before it runs: its prompt's size plus the completion it asked room for."""
    room = payload.get("max_tokens") or payload.get("max_completion_tokens") or payload.get("max_output_tokens")
    return estimate_tokens(len(raw)) + (room if isinstance(room, int) and room > 0 else 0)


class Proxy:
    def __init__(
        self,
        *,
        config: Config,
        keyring: KeyRing,
        ledger: Ledger,
        clock: Clock,
        limiter: Limiter,
        auth_failures: AuthFailures,
        spikes: SpikeDetector,
        report_abuse: Callable[[AuditEntry], None],
    ) -> None:
        self.config = config
        self.keyring = keyring
        self.router: Router  # set by the app once the upstreams exist (they need its ClientSession)
        self.ledger = ledger
        self.clock = clock
        self.limiter = limiter
        self.auth_failures = auth_failures
        self.spikes = spikes
        self.report_abuse = report_abuse
        self.prices = PriceBook(config)
        """What each call costs, at metering (a reload brings a new book: history keeps its prices)."""
        self.in_flight = 0
        """Calls between arrival and their last byte; the ledger batches more when it is high."""

    def routes(self) -> list[web.RouteDef]:
        defs = [web.post(f"/v1/{path}", self._handler(wire)) for path, wire in WIRES.items()]
        defs.append(web.get("/v1/models", self.list_models))
        defs.append(web.get("/v1/models/{model:.+}", self.retrieve_model))
        return defs

    def _handler(self, wire: Wire):
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, wire)

        return handler

    # -- checks ----------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> ApiKey:
        presented = presented_key(request)
        if not presented:
            raise errors.bad_key("Missing API key. Send it as `Authorization: Bearer sk-noor-…` or `x-api-key`.")
        key = self.keyring.lookup(presented)
        if key is None:
            raise errors.bad_key()
        now_ms = int(self.clock.now() * 1000)
        if key.expires_at is not None and key.expires_at <= now_ms:
            raise errors.bad_key("This API key has expired.")
        account = self.keyring.accounts.get(key.account_id)
        if account is None:
            raise errors.bad_key()
        if key.status != "active":
            raise errors.forbidden("This API key is suspended. Ask the gateway's administrator.", code="key_suspended")
        if account.status != "active":
            raise errors.forbidden("This account is suspended. Ask the gateway's administrator.", code="account_suspended")
        self.keyring.touch(key, now_ms)
        return key

    def may_use(self, key: ApiKey, model: str) -> bool:
        if key.allowed_models is not None and model not in key.allowed_models:
            return False
        account = self.keyring.accounts.get(key.account_id)
        plan = self.config.plan(account.plan) if account else None
        if plan is not None and plan.allowed_models is not None and model not in plan.allowed_models:
            return False
        return True

    def worst_cost(self, raw: bytes, payload: dict, routes: list[Route]) -> int:
        """The most this call can cost on any of its routes (picounits), for the budgets: every byte of the body
        a prompt token (a token is at least a byte), and all the output it asked room for (or the model's most).
        A model nobody priced cannot be held to a budget: refused, with what to configure."""
        room = payload.get("max_tokens") or payload.get("max_completion_tokens") or payload.get("max_output_tokens")
        room = room if isinstance(room, int) and room > 0 else None
        worst = 0
        for route in routes:
            price = self.prices.price(route.upstream.name, route.model)
            if price is None:
                raise errors.forbidden(
                    f"No price is known for `{route.model}`, so this key's budget cannot be kept; the gateway's administrator "
                    f'can add [prices."{route.model}"] to its config.',
                    code="model_not_priced",
                )
            worst = max(worst, price.worst_case(len(raw), room, DEFAULT_MAX_OUTPUT))
        return worst

    async def read_payload(self, request: web.Request) -> tuple[bytes, dict]:
        limit = self.config.server.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise errors.too_large(limit)
        content = request.content
        if content.is_eof():  # the whole body came in with the head, as a small request's does: no read loop
            raw = content.read_nowait()
            if len(raw) > limit:
                raise errors.too_large(limit)
        else:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise errors.too_large(limit) from None
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise errors.bad_request(
                "We could not parse the JSON body of your request. Send a JSON object with Content-Type: application/json."
            ) from None
        if not isinstance(payload, dict):
            raise errors.bad_request("The request body must be a JSON object.")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise errors.bad_request("You must provide a model parameter.", param="model")
        if "stream" in payload and payload["stream"] is not None and not isinstance(payload["stream"], bool):
            raise errors.bad_request("`stream` must be a boolean.", param="stream")
        return raw, payload

    # -- the path --------------------------------------------------------------------

    def guarded_authenticate(self, request: web.Request) -> ApiKey:
        """`authenticate`, refusing addresses in a cooling-off period and counting failures."""
        address = request.remote
        wait = self.auth_failures.blocked_for(address)
        if wait:
            raise GatewayError(
                429,
                "rate_limit",
                f"Too many failed authentications from your address; try again in {math.ceil(wait)}s.",
                code="too_many_failed_authentications",
                headers={"retry-after": str(math.ceil(wait))},
            )
        try:
            return self.authenticate(request)
        except GatewayError as error:
            if error.status == 401 and self.auth_failures.record_failure(address):
                self.report_abuse(
                    AuditEntry(
                        "abuse.address_blocked",
                        "system",
                        "address",
                        address,
                        details={"cooloff_seconds": self.config.abuse.cooloff_seconds},
                    )
                )
            raise

    async def handle(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        call = Call(wire.path, int(self.clock.now() * 1000))
        admission: Admission | None = None
        self.in_flight += 1
        try:
            call.key = key = self.guarded_authenticate(request)
            raw, payload = await self.read_payload(request)
            call.stream = payload.get("stream") is True and wire.streams
            routes = self.router.routes(payload["model"], wire.path)
            call.model = payload["model"]  # a name a route resolved: only such names reach the ledger
            if not self.may_use(key, call.model):
                raise errors.forbidden(f"This key may not use the model `{call.model}`.", code="model_not_allowed")
            account = self.keyring.accounts[key.account_id]
            if self.limiter.shared is None:
                admission = self.limiter.admit(
                    key, account, token_estimate(raw, payload), wire.family, lambda: self.worst_cost(raw, payload, routes)
                )
            else:  # [limits] redis_url: counted with the other daemons (or locally while Redis is down)
                admission = await self.limiter.shared.admit(
                    key, account, token_estimate(raw, payload), wire.family, lambda: self.worst_cost(raw, payload, routes)
                )
            spike = self.spikes.observe(key.id, account.id)
            if spike is not None:
                self.report_abuse(
                    AuditEntry(
                        "abuse.spike_flagged",
                        "system",
                        "key",
                        key.id,
                        account.id,
                        {"requests_this_minute": spike.requests_this_minute, "baseline_per_minute": spike.baseline_per_minute},
                    )
                )
            return await self.forward(request, wire, call, raw, payload, routes, admission.headers)
        except GatewayError as error:
            call.conclude(error.status)
            await self.meter(call, quietly=True)
            response = wire.error_response(error)
            if admission is not None:
                response.headers.update(admission.headers)
            return response
        except asyncio.CancelledError:
            # The daemon is shutting down or the client vanished: meter without waiting.
            if not call.metered:
                call.conclude(CLIENT_CLOSED, call.usage, estimated=call.estimated)
                self.ledger.enqueue(call.event())
            raise
        except ConnectionError:
            # The client went away (mid-body, or before the first event): nobody to answer.
            if not call.metered:
                call.conclude(CLIENT_CLOSED)
                await self.meter(call, quietly=True)
            return web.Response(status=CLIENT_CLOSED)  # never delivered: the socket is gone
        except Exception as exc:
            # A fault of ours. Its message may quote the request (a KeyError does), so only its
            # type is logged; the caller still gets its API's error shape and the call is metered.
            log.error("%s %s failed: %s", request.method, request.path, type(exc).__name__)
            # Past the first event or the metering, the answer has begun: it can only be cut off.
            started = call.ttft_ms is not None or call.metered
            if not call.metered:
                call.conclude(500)
                if started:
                    self.ledger.enqueue(call.event())
                else:
                    await self.meter(call, quietly=True)
            if started:
                raise RuntimeError(f"{type(exc).__name__} in the request path") from None
            return wire.error_response(
                GatewayError(500, "upstream", "The gateway failed on this request; its log names the error.", code="internal_error")
            )
        finally:
            self.in_flight -= 1
            if admission is not None:
                if self.limiter.shared is None:
                    self.limiter.finish(admission, call.usage.prompt_tokens + call.usage.completion_tokens)
                else:
                    await self.limiter.shared.finish(admission, call.usage.prompt_tokens + call.usage.completion_tokens)

    async def meter(self, call: Call, *, quietly: bool = False) -> None:
        """Commit the call's usage row. Raises `LedgerUnavailable` unless `quietly`.

        When the ledger fails, the row stays queued for retry; in fail-closed mode the client
        is answered 503 instead, so the row is changed to say so before it is written.
        """
        call.metered = True
        event = call.event()
        event.cost = self.prices.cost(
            event.provider, call.priced_model or event.model, event.prompt_tokens, event.completion_tokens,
            event.cached_tokens, event.cache_write_tokens,
        )
        try:
            await self.ledger.record(event)
        except LedgerUnavailable:
            if not self.config.ledger.fail_open and not quietly:
                event.status, event.prompt_tokens, event.completion_tokens = 503, 0, 0
            if not quietly:
                raise

    async def forward(
        self,
        request: web.Request,
        wire: Wire,
        call: Call,
        raw: bytes,
        payload: dict,
        routes: list[Route],
        limit_headers: dict[str, str],
    ) -> web.StreamResponse:
        """Try the routes in order until one answers; fall back only while nothing was sent.

        Connection errors, timeouts, 429 and 5xx move the call on. The last route's answer,
        whatever it is, goes to the client; each abandoned attempt counts against its route.
        """
        if not self.ledger.healthy and not self.config.ledger.fail_open:
            raise GatewayError(
                503, "unavailable", "The usage ledger cannot be written (disk full or database locked); retry shortly.",
                code="ledger_unavailable", headers={"retry-after": "1"},
            )
        deadline = call.started + self.config.routing.total_deadline
        failure: GatewayError | None = None
        for index, route in enumerate(routes):
            upstream = route.upstream
            if wire.path not in upstream.formats and wire.path == "messages/count_tokens":
                return await self._estimated_count(wire, call, raw, route, limit_headers)
            retried = False
            while True:  # once, or twice when the provider turns out not to serve the caller's format
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                call.provider = upstream.name
                call.priced_model = route.model
                try:
                    outgoing = self._outgoing(wire, payload, raw, route)
                except Untranslatable as refused:  # this route cannot take the call as asked; another may
                    failure = refused
                    break
                body = outgoing.encode(payload, raw)
                route.health.on_attempt()
                attempt_started = time.perf_counter()
                try:
                    reply = await upstream.send(
                        outgoing.endpoint or wire.path, body, request.headers if outgoing.headers is None else outgoing.headers,
                        remaining, route.model,
                    )
                except GatewayError as error:
                    failure = error
                else:
                    if reply.status == 404 and outgoing.translation is None and not retried:
                        reply = await self._unless_format_missing(reply, upstream, wire.path)
                        if reply is None:  # remembered as not serving it: this call and the next are translated
                            retried = True
                            continue
                    if reply.status in (401, 403):
                        # The provider refused *our* credentials: a gateway misconfiguration, not the
                        # caller's key. Say so (502) rather than pass on a misleading 401.
                        reply.release()
                        failure = errors.upstream_failed(
                            upstream.name, 502, f"refused the gateway's provider credentials ({reply.status}); check its api_key"
                        )
                        self._attempt_failed(call, route, reply.status, attempt_started)
                        break
                    retryable = reply.status == 429 or reply.status >= 500
                    if not retryable or index == len(routes) - 1:
                        try:
                            return await self._answer(request, wire, call, raw, reply, outgoing, route, limit_headers)
                        except _NothingSent as unsent:
                            failure = unsent.error
                    else:
                        reply.release()
                        failure = errors.upstream_failed(upstream.name, 502, f"answered {reply.status}")
                        failure.status = reply.status
                self._attempt_failed(call, route, failure.status, attempt_started)
                break
        raise failure or errors.upstream_failed(call.provider or "upstream", 504, "no answer before the call's deadline")

    def _outgoing(self, wire: Wire, payload: dict, raw: bytes, route: Route) -> Outgoing:
        """The request as it leaves for `route`: relayed when its provider serves the caller's format, else translated."""
        upstream = route.upstream
        if wire.path in upstream.formats:
            return wire.prepare(payload, route.model)
        target = translate.target_format(wire.path, upstream.formats, getattr(upstream, "protocol", "openai"))
        if target is None:
            raise errors.bad_request(f"The provider {upstream.name!r} does not serve /v1/{wire.path}.", code="model_api_mismatch")
        config = getattr(upstream, "config", None)
        options = Target(upstream.kind, config.default_max_tokens) if config is not None else Target(upstream.kind)
        return translate.translate(
            wire.path, payload, target, route.model, options, raw_size=len(raw), now=int(self.clock.now()), scrub=self.router.scrub
        )

    @staticmethod
    async def _unless_format_missing(reply: UpstreamReply, upstream, endpoint: str) -> UpstreamReply | None:
        """A 404 that is not about the model means the provider lacks the endpoint: it forgets the format (None),
        if another remains to translate to. Otherwise the answer, read, to pass on."""
        try:
            data = await reply.read()
        except GatewayError:
            data = b""
        finally:
            reply.release()
        if b"model" not in data.lower() and upstream.forget_format(endpoint):
            log.warning("provider %s answered 404 to /v1/%s: its calls there are translated from now on", upstream.name, endpoint)
            return None
        return _ReadReply(reply, data)

    async def _estimated_count(
        self, wire: Wire, call: Call, raw: bytes, route: Route, limit_headers: dict[str, str]
    ) -> web.Response:
        """`/v1/messages/count_tokens` for a provider that cannot count: the offline estimate, marked as such."""
        call.provider = route.upstream.name
        call.conclude(200, Usage(0, 0), estimated=True)
        await self.meter(call)
        body = orjson.dumps({"input_tokens": estimate_tokens(len(raw)), "estimated": True})
        return web.Response(body=body, content_type="application/json", headers={**limit_headers, "x-noor-estimated": "true"})

    def _attempt_failed(self, call: Call, route: Route, status: int, started: float) -> None:
        route.health.on_failure(self.clock.monotonic())
        self.ledger.note_attempt(
            RouteSample(call.ts, route.upstream.name, call.model, status, (time.perf_counter() - started) * 1000)
        )

    async def _answer(
        self,
        request: web.Request,
        wire: Wire,
        call: Call,
        raw: bytes,
        reply: UpstreamReply,
        outgoing: Outgoing,
        route: Route,
        limit_headers: dict[str, str],
    ) -> web.StreamResponse:
        try:
            if call.stream and reply.status < 400 and reply.content_type == "text/event-stream":
                assert outgoing.new_meter is not None
                return await self._stream(request, wire, call, raw, reply, outgoing.new_meter(), route, limit_headers)
            call.stream = False
            try:
                data = await reply.read()
            except GatewayError as error:  # cut short or undecodable: nothing was sent, another route may answer
                raise _NothingSent(error) from None
        finally:
            reply.release()
        if reply.status >= 500 or reply.status == 429:
            route.health.on_failure(self.clock.monotonic())
        else:
            route.health.on_success(call.elapsed_ms())
        status, content_type = reply.status, reply.content_type or "application/json"
        if status >= 400:  # never the provider's body as it came: its type and message, redacted, in the caller's shape
            usage, estimated = Usage(), False
            data = relay_answer(status, data, content_type, wire, self.router.scrub)
            content_type = "application/json"
        elif outgoing.translation is None:
            usage, estimated = self._usage_of_body(wire, raw, data, status)
        else:
            usage, estimated, status, data = self._translated_body(wire, raw, data, outgoing)
            content_type = "application/json"
        call.conclude(status, usage, estimated=estimated)
        try:
            await self.meter(call)
        except LedgerUnavailable as exc:
            if not self.config.ledger.fail_open:
                return wire.error_response(GatewayError(503, "unavailable", str(exc), code="ledger_unavailable"))
        return whole_answer(status, data, content_type, {**reply.headers, **limit_headers})

    @staticmethod
    def _translated_body(wire: Wire, raw: bytes, data: bytes, outgoing: Outgoing) -> tuple[Usage, bool, int, bytes]:
        """(usage, estimated, status, body) of a translated whole answer; usage as the provider reported it."""
        assert outgoing.translation is not None
        try:
            body, reported = outgoing.translation.answer(data)
        except GatewayError as error:
            return Usage(estimate_tokens(len(raw)), estimate_tokens(len(data))), True, error.status, wire.error_body(error)
        if reported is None:
            return Usage(estimate_tokens(len(raw)), estimate_tokens(len(data))), True, 200, body
        return reported, False, 200, body

    @staticmethod
    def _usage_of_body(wire: Wire, raw: bytes, data: bytes, status: int) -> tuple[Usage, bool]:
        if status >= 400:
            return Usage(), False
        usage = None
        try:
            parsed = orjson.loads(data)
            if isinstance(parsed, dict):
                usage = wire.usage_from_body(parsed)
        except orjson.JSONDecodeError:
            pass
        if usage is not None:
            return usage, False
        return Usage(estimate_tokens(len(raw)), estimate_tokens(len(data))), True

    async def _stream(
        self,
        request: web.Request,
        wire: Wire,
        call: Call,
        raw: bytes,
        reply: UpstreamReply,
        meter: StreamMeter,
        route: Route,
        limit_headers: dict[str, str],
    ) -> web.StreamResponse:
        """Relay events as they come. Headers go out with the first event, so an upstream that
        fails before it can still be replaced by another route."""
        response = EventStream({"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **reply.headers, **limit_headers})
        splitter = EventSplitter()
        held: list[bytes] = []
        failure: GatewayError | None = None
        client_left = False
        write_timeout = self.config.server.client_write_timeout
        try:
            async for chunk in reply.chunks():
                data = meter.relay(splitter.feed(chunk), held)
                if not data:
                    continue
                if call.ttft_ms is None:
                    call.ttft_ms = call.elapsed_ms()
                    await response.prepare(request)
                # Events that arrived together leave together: one write, one syscall.
                # aiohttp's write waits for the socket to drain, so a slow reader slows the
                # upstream read too (backpressure); one that stops reading is cut off. The
                # timer is only armed when a write may block (no cost per event otherwise).
                transport = request.transport
                if transport is not None and (transport.get_write_buffer_size() or len(data) > _BIG_WRITE):
                    async with asyncio.timeout(write_timeout):
                        await response.write(data)
                else:
                    await response.write(data)
        except GatewayError as error:
            if not response.prepared:
                reply.release()
                raise _NothingSent(error) from None
            failure = error
        except (ConnectionResetError, ConnectionError):
            client_left = True
        except TimeoutError:
            client_left = True
            if request.transport is not None:
                request.transport.close()
        finally:
            reply.release()
        if failure is None and not client_left:
            closing = meter.finish()  # a translated stream's end, when the provider sent no terminal event
            if closing:
                held.append(closing)
        if meter.error_status is not None and held and meter.relayed:
            held[0] = sanitize_stream_error(held[0], self.router.scrub)  # the provider's error event, redacted
        # The outcome: the client left, the upstream broke off, it ended with an error event, or it is whole.
        if client_left:
            status = CLIENT_CLOSED
        elif failure is not None:
            status = failure.status
        elif meter.error_status is not None:
            status = meter.error_status
        else:
            status = reply.status
        if failure is not None:
            route.health.on_failure(self.clock.monotonic())
        elif status == 200:
            route.health.on_success(call.ttft_ms)
        usage, estimated = stream_usage(meter, len(raw), complete=status == 200)
        call.conclude(status, usage, estimated=estimated)
        try:
            await self.meter(call)
        except LedgerUnavailable as exc:
            if not self.config.ledger.fail_open:
                failure = GatewayError(503, "unavailable", str(exc), code="ledger_unavailable")
                held.clear()
        if client_left:
            return response
        try:
            if not response.prepared:
                await response.prepare(request)
            tail = b"".join(held)
            if failure is not None:
                tail = wire.stream_error(failure) + tail
            await response.write_eof(tail)  # the held events and the end of the body in one write
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    # -- models ----------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        """Listing models is not an LLM call, so it is answered but not metered."""
        wire = WIRES["messages"] if "anthropic-version" in request.headers else WIRES["chat/completions"]
        try:
            key = self.guarded_authenticate(request)
        except GatewayError as error:
            return wire.error_response(error)
        names = [m for m in self.router.model_names if self.may_use(key, m)]
        return web.Response(body=wire.models_list(names), content_type="application/json")

    async def retrieve_model(self, request: web.Request) -> web.Response:
        """`GET /v1/models/{id}` (both SDKs' `models.retrieve`): a model this key may use, else a 404 in its API's shape."""
        wire = WIRES["messages"] if "anthropic-version" in request.headers else WIRES["chat/completions"]
        name = request.match_info["model"]
        try:
            key = self.guarded_authenticate(request)
            if not self.router.knows(name) or not self.may_use(key, name):
                raise errors.unknown_model(name)
        except GatewayError as error:
            return wire.error_response(error)
        # One model's object is an item of the list, so the two answers cannot disagree on its shape.
        item = orjson.loads(wire.models_list([name]))["data"][0]
        return web.Response(body=orjson.dumps(item), content_type="application/json")


class _ReadReply:
    """An upstream answer whose body was read already (to look at a 404), handed on as if unread."""

    __slots__ = ("status", "content_type", "headers", "_data")

    def __init__(self, reply: UpstreamReply, data: bytes) -> None:
        self.status, self.content_type, self.headers, self._data = reply.status, reply.content_type, reply.headers, data

    async def chunks(self):
        yield self._data

    async def read(self) -> bytes:
        return self._data

    def release(self) -> None:
        pass


class _NothingSent(Exception):
    """A stream failed before its first byte reached the client: another route may take it."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(str(error))
        self.error = error
