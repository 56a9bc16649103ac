"""A stand-in upstream provider: a real aiohttp server on loopback speaking OpenAI and Anthropic.

It answers the shapes the real APIs answer (bodies, SSE event sequences, usage), echoes the
last user message inside its completion (so a canary in a prompt comes back in the
completion), counts tokens deterministically, records every request it received, and can
be told per test to misbehave: answer an error status, hang, close mid-stream, or report
no usage.

    standin.fail(500, "boom")          # every following call answers 500 with "boom" in its body
    standin.hang()                     # no response headers until the test ends
    standin.hang_mid_stream(after=2)   # two events, then silence
    standin.close_mid_stream(after=2)  # two events, then the connection is cut
    standin.no_usage()                 # bodies and streams carry no usage
    standin.serve_only("/v1/chat/completions")   # every other endpoint answers 404, as a chat-only server does
    standin.script(Script(reasoning="…", calls=[("get_weather", {"city": "Paris"})], cached_tokens=3))
    standin.reset()

Tools work as a model's would: offered tools and a user's last word make the stand-in call the
tool the user named (else the first), its required string arguments taken from the user's
`backticked` text; after a tool's result it answers in words. A `Script` fixes the next answers:
reasoning, text, tool calls (parallel when several), a refusal or a length stop, cached tokens.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

UPSTREAM_OPENAI_SECRET = "sk-upstream-openai-standin-secret"
UPSTREAM_ANTHROPIC_SECRET = "sk-ant-upstream-standin-secret"
OPENAI_KEY_ENV = "STANDIN_OPENAI_KEY"
ANTHROPIC_KEY_ENV = "STANDIN_ANTHROPIC_KEY"

MODELS = ("standin-gpt", "standin-gpt-mini", "standin-embed", "standin-claude")


def count_tokens(text: str) -> int:
    """The stand-in's tokenizer: one token per whitespace-separated word. Deterministic."""
    return len(text.split())


@dataclass
class Received:
    """One request as the stand-in saw it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict | None
    usage: tuple[int, int] | None = None
    """(prompt/input tokens, completion/output tokens) the stand-in reported, if it did."""
    query: str = ""
    completed: bool = False
    """True once the whole answer was written."""


@dataclass
class Script:
    """What the stand-in answers, in whichever format it is asked: fixed instead of echoed."""

    text: str | None = None
    """None: the usual echo of the user's last words (empty when tool calls are made)."""
    reasoning: str | None = None
    calls: list[tuple[str, dict]] | None = None
    """Tool calls (name, arguments); None: decided from the offered tools as usual; []: none."""
    stop: str = "end"
    """end | length | refusal"""
    cached_tokens: int = 0
    """Prompt tokens reported as read from the provider's cache."""
    signature: str = "standin-signature"
    """The signature an Anthropic thinking block carries."""


@dataclass
class Plan:
    text: str
    reasoning: str | None
    calls: list[tuple[str, str, str]]
    """(id, name, arguments as JSON text)."""
    stop: str
    cached_tokens: int
    signature: str


@dataclass
class Behaviour:
    mode: str = "ok"  # ok | status | raw | hang | hang_mid_stream | close | close_mid_stream | error_mid_stream | no_usage | empty_usage
    status: int = 500
    message: str = "stand-in failure"
    headers: dict[str, str] = field(default_factory=dict)
    after_events: int = 2
    extra: dict = field(default_factory=dict)


class StandIn:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.behaviour = Behaviour()
        self.stream_delay = 0.0
        """Seconds between streamed events (0: as fast as possible)."""
        self._release = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.scripted: Script | None = None
        self.served: set[str] | None = None
        """The only paths answered (others 404 like a server without them); None: all."""

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> StandIn:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/v1/chat/completions", self.chat),
                web.post("/v1/completions", self.completions),
                web.post("/v1/embeddings", self.embeddings),
                web.post("/v1/responses", self.responses),
                web.get("/v1/models", self.models),
                web.post("/v1/messages", self.messages),
                web.post("/v1/messages/count_tokens", self.count_tokens),
                # the same endpoints under the paths other servers use (/openai/v1, /api/v1, /v1beta/openai,
                # Azure's /openai/deployments/NAME/… with ?api-version=)
                web.post("/{prefix:.+}/chat/completions", self.chat),
                web.post("/{prefix:.+}/completions", self.completions),
                web.post("/{prefix:.+}/embeddings", self.embeddings),
                web.post("/{prefix:.+}/responses", self.responses),
                web.post("/{prefix:.+}/messages/count_tokens", self.count_tokens),
                web.post("/{prefix:.+}/messages", self.messages),
                web.get("/{prefix:.+}/models", self.models),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        """The Anthropic-kind base URL (the SDK appends /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    # -- test controls ----------------------------------------------------------------

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.stream_delay = 0.0
        self.scripted = None
        self.served = None

    def script(self, script: Script | None) -> None:
        self.scripted = script

    def serve_only(self, *paths: str) -> None:
        self.served = set(paths)

    def fail(self, status: int, message: str = "stand-in failure", headers: dict[str, str] | None = None,
             extra: dict | None = None) -> None:
        """Answer `status` with the API's error body; `extra` fields go into its error object (a provider's debug dump, say)."""
        self.behaviour = Behaviour("status", status, message, dict(headers or {}), extra=dict(extra or {}))

    def fail_raw(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        """Answer `status` with `body` as it is (a proxy's text or HTML page, a server's own format)."""
        self.behaviour = Behaviour("raw", status, body.decode(errors="replace"), {"Content-Type": content_type})

    def hang(self) -> None:
        self.behaviour = Behaviour("hang")

    def hang_mid_stream(self, after: int = 2) -> None:
        self.behaviour = Behaviour("hang_mid_stream", after_events=after)

    def close(self) -> None:
        """Cut the connection before any response bytes."""
        self.behaviour = Behaviour("close")

    def close_mid_stream(self, after: int = 2) -> None:
        self.behaviour = Behaviour("close_mid_stream", after_events=after)

    def error_mid_stream(self, after: int = 2, status: int = 529, message: str = "Overloaded") -> None:
        """`after` events, then the API's in-stream error event, then a clean end (as both APIs do)."""
        self.behaviour = Behaviour("error_mid_stream", status, message, after_events=after)

    def no_usage(self) -> None:
        self.behaviour = Behaviour("no_usage")

    def empty_usage(self) -> None:
        """Send `"usage": {}` where usage belongs, as some compatible servers do."""
        self.behaviour = Behaviour("empty_usage")

    @property
    def last(self) -> Received:
        return self.requests[-1]

    # -- plumbing ---------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> Received:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen = Received(request.method, request.path, dict(request.headers), raw, body if isinstance(body, dict) else None,
                        query=request.query_string)
        self.requests.append(seen)
        return seen

    def _error_body(self, path: str, status: int, message: str) -> dict:
        if "/messages" in path:
            kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}
            return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": message}}
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_exceeded"}
        return {"error": {"message": message, "type": kind.get(status, "server_error"), "param": None, "code": None}}

    async def _misbehave_before(self, request: web.Request, seen: Received) -> web.StreamResponse | None:
        """Failures that happen before any answer; None when the call should proceed."""
        b = self.behaviour
        if self.served is not None and request.path not in self.served:
            return web.json_response({"detail": "Not Found"}, status=404)
        if b.mode == "raw":
            return web.Response(status=b.status, body=b.message.encode(), headers=b.headers)
        if b.mode == "status":
            body = self._error_body(request.path, b.status, b.message)
            body["error"].update(b.extra)
            return web.json_response(body, status=b.status, headers=b.headers)
        if b.mode == "hang":
            await self._release.wait()
            return web.Response(status=503, text="released at teardown")
        if b.mode == "close":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=204)  # never sent: the connection is gone
        return None

    @property
    def _usage_on(self) -> bool:
        return self.behaviour.mode not in ("no_usage", "empty_usage")

    @property
    def _empty_usage(self) -> bool:
        return self.behaviour.mode == "empty_usage"

    async def _json(self, seen: Received, payload: dict, usage: tuple[int, int]) -> web.Response:
        if self._usage_on:
            seen.usage = usage
        seen.completed = True
        return web.json_response(payload, headers={"x-request-id": f"req_standin_{next(self._ids)}"})

    async def _stream(self, request: web.Request, seen: Received, events: list[bytes], usage: tuple[int, int] | None):
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-request-id": f"req_standin_{next(self._ids)}"}
        )
        await response.prepare(request)
        b = self.behaviour
        if usage is not None and self._usage_on:
            seen.usage = usage
        for index, event in enumerate(events):
            if b.mode == "error_mid_stream" and index == b.after_events:
                body = self._error_body(request.path, b.status, b.message)
                if request.path.endswith("/responses"):  # the Responses API's own error event
                    code = "rate_limit_exceeded" if b.status == 429 else "server_error"
                    body = {"type": "error", "code": code, "message": b.message, "param": None, "sequence_number": index}
                named = "/messages" in request.path or request.path.endswith("/responses")
                await response.write(_sse(body, "error" if named else None))
                await response.write_eof()
                return response
            if b.mode in ("hang_mid_stream", "close_mid_stream") and index == b.after_events:
                if b.mode == "hang_mid_stream":
                    await self._release.wait()
                if request.transport is not None:
                    request.transport.close()
                return response
            if index and self.stream_delay:
                await asyncio.sleep(self.stream_delay)
            await response.write(event)
        await response.write_eof()
        seen.completed = True
        return response

    # -- what to answer -------------------------------------------------------------------

    def _plan(self, user_text: str, tools: list[tuple[str, dict]], choice: object, after_tool: bool, call_prefix: str) -> Plan:
        """The answer, whatever the format: the script's, or an echo; tool calls when a model would make them."""
        script = self.scripted or Script()
        if script.calls is not None:
            chosen = [(name, json.dumps(arguments)) for name, arguments in script.calls]
        else:
            chosen = [(name, json.dumps(_arguments(schema, user_text))) for name, schema in _tools_to_call(tools, choice, user_text, after_tool)]
        calls = [(f"{call_prefix}_{k}", name, arguments) for k, (name, arguments) in enumerate(chosen)]  # the same every time
        text = script.text if script.text is not None else ("" if calls else reply_text(user_text))
        return Plan(text, script.reasoning, calls, script.stop, script.cached_tokens, script.signature)

    @staticmethod
    def _completion_tokens(plan: Plan) -> int:
        return count_tokens(plan.text) + count_tokens(plan.reasoning or "") + sum(count_tokens(a) + 1 for _, _, a in plan.calls)

    # -- OpenAI -----------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        seen = await self._receive(request)
        if (early := await self._misbehave_before(request, seen)) is not None:
            return early
        body = seen.body or {}
        messages = body.get("messages") or []
        prompt_tokens = sum(count_tokens(_text(m.get("content"))) + 3 for m in messages if isinstance(m, dict))
        tools = [(t["function"]["name"], t["function"].get("parameters") or {}) for t in body.get("tools") or []]
        after_tool = bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
        choice = body.get("tool_choice")
        choice = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else choice
        plan = self._plan(_last_user(messages), tools, choice, after_tool, "call_standin")
        completion_tokens = self._completion_tokens(plan)
        usage = _openai_usage(prompt_tokens, completion_tokens, plan.cached_tokens)
        finish = "tool_calls" if plan.calls else {"end": "stop", "length": "length", "refusal": "stop"}[plan.stop]
        refusal = plan.text if plan.stop == "refusal" else None
        text = None if refusal is not None else plan.text
        calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in plan.calls]
        ident, created, model = f"chatcmpl-standin{next(self._ids)}", int(time.time()), body.get("model")
        if body.get("stream") is not True:
            message: dict[str, Any] = {"role": "assistant", "content": text or None if calls else text, "refusal": refusal, "annotations": []}
            if plan.reasoning:
                message["reasoning_content"] = plan.reasoning
            if calls:
                message["tool_calls"] = calls
            payload = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_standin",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "service_tier": "default",
            }
            if self._usage_on:
                payload["usage"] = usage
            elif self._empty_usage:
                payload["usage"] = {}
            return await self._json(seen, payload, (prompt_tokens, completion_tokens))
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True and self._usage_on
        base: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_standin",
        }
        if include_usage:
            base["usage"] = None  # as OpenAI does on every chunk but the last when include_usage is set

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if plan.reasoning:
            events += [chunk({"reasoning_content": piece}) for piece in _pieces(plan.reasoning)]
        if refusal is not None:
            events += [chunk({"refusal": piece}) for piece in _pieces(refusal)]
        elif text:
            events += [chunk({"content": piece}) for piece in _pieces(text)]
        for index, (call_id, name, arguments) in enumerate(plan.calls):
            head = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            events.append(chunk({"tool_calls": [head]}))
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}) for piece in _halves(arguments)]
        events.append(chunk({}, finish))
        if include_usage:
            events.append(_sse({**base, "choices": [], "usage": usage}))
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, seen, events, (prompt_tokens, completion_tokens) if include_usage else None)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        seen = await self._receive(request)
        if (early := await self._misbehave_before(request, seen)) is not None:
            return early
        body = seen.body or {}
        prompt = body.get("prompt")
        prompt_text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt or [] if isinstance(p, str))
        prompt_tokens = count_tokens(prompt_text)
        text = reply_text(prompt_text)
        completion_tokens = count_tokens(text)
        usage = _openai_usage(prompt_tokens, completion_tokens)
        base = {"id": f"cmpl-standin{next(self._ids)}", "object": "text_completion", "created": int(time.time()), "model": body.get("model")}
        if body.get("stream") is not True:
            payload: dict[str, Any] = {**base, "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}]}
            if self._usage_on:
                payload["usage"] = usage
            return await self._json(seen, payload, (prompt_tokens, completion_tokens))
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True and self._usage_on
        extra = {"usage": None} if include_usage else {}
        events = [
            _sse({**base, **extra, "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]})
            for piece in _pieces(text)
        ]
        events.append(_sse({**base, **extra, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}))
        if include_usage:
            events.append(_sse({**base, "choices": [], "usage": usage}))
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, seen, events, (prompt_tokens, completion_tokens) if include_usage else None)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        seen = await self._receive(request)
        if (early := await self._misbehave_before(request, seen)) is not None:
            return early
        body = seen.body or {}
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        prompt_tokens = sum(count_tokens(i) if isinstance(i, str) else len(i) for i in items)
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
        data = []
        for index, item in enumerate(items):
            vector = [((len(str(item)) * 31 + index * 7 + d) % 97) / 97.0 for d in range(dims)]
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        payload: dict[str, Any] = {"object": "list", "data": data, "model": body.get("model")}
        if self._usage_on:
            payload["usage"] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
        return await self._json(seen, payload, (prompt_tokens, 0))

    async def responses(self, request: web.Request) -> web.StreamResponse:
        seen = await self._receive(request)
        if (early := await self._misbehave_before(request, seen)) is not None:
            return early
        body = seen.body or {}
        user_text, all_text = _responses_input(body)
        input_tokens = count_tokens(all_text) + 3
        tools = [(t["name"], t.get("parameters") or {}) for t in body.get("tools") or [] if t.get("type") == "function"]
        given = body.get("input")
        after_tool = isinstance(given, list) and bool(given) and given[-1].get("type") == "function_call_output"
        choice = body.get("tool_choice")
        choice = choice.get("name") if isinstance(choice, dict) else choice
        plan = self._plan(user_text, tools, choice, after_tool, "call_standin")
        output_tokens = self._completion_tokens(plan)
        n = next(self._ids)
        output: list[dict] = []
        if plan.reasoning:
            output.append({"type": "reasoning", "id": f"rs_standin{n}", "summary": [{"type": "summary_text", "text": plan.reasoning}]})
        if plan.text:
            part = {"type": "refusal", "refusal": plan.text} if plan.stop == "refusal" else {
                "type": "output_text", "text": plan.text, "annotations": [], "logprobs": []}
            output.append({"type": "message", "id": f"msg_standin{n}", "status": "completed", "role": "assistant", "content": [part]})
        for k, (call_id, name, arguments) in enumerate(plan.calls):
            output.append({"type": "function_call", "id": f"fc_standin{n}_{k}", "status": "completed", "call_id": call_id,
                           "name": name, "arguments": arguments})
        incomplete = plan.stop == "length"
        response: dict[str, Any] = {
            "id": f"resp_standin{n}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed",
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body.get("model"),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "metadata": {},
        }
        if self._usage_on:
            response["usage"] = {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": plan.cached_tokens},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": count_tokens(plan.reasoning or "")},
                "total_tokens": input_tokens + output_tokens,
            }
        else:
            response["usage"] = None
        if body.get("stream") is not True:
            return await self._json(seen, response, (input_tokens, output_tokens))
        seq = itertools.count()
        pending = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}

        def ev(kind: str, **fields: Any) -> bytes:
            return _sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

        events = [ev("response.created", response=pending), ev("response.in_progress", response=pending)]
        for index, item in enumerate(output):
            item_id = item["id"]
            if item["type"] == "reasoning":
                text = item["summary"][0]["text"]
                events.append(ev("response.output_item.added", output_index=index, item={**item, "summary": []}))
                events.append(ev("response.reasoning_summary_part.added", item_id=item_id, output_index=index, summary_index=0,
                                 part={"type": "summary_text", "text": ""}))
                events += [ev("response.reasoning_summary_text.delta", item_id=item_id, output_index=index, summary_index=0, delta=piece)
                           for piece in _pieces(text)]
                events.append(ev("response.reasoning_summary_text.done", item_id=item_id, output_index=index, summary_index=0, text=text))
                events.append(ev("response.reasoning_summary_part.done", item_id=item_id, output_index=index, summary_index=0,
                                 part={"type": "summary_text", "text": text}))
            elif item["type"] == "message":
                part = item["content"][0]
                events.append(ev("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}))
                empty = {**part, "text": ""} if part["type"] == "output_text" else {**part, "refusal": ""}
                events.append(ev("response.content_part.added", item_id=item_id, output_index=index, content_index=0, part=empty))
                if part["type"] == "output_text":
                    events += [ev("response.output_text.delta", item_id=item_id, output_index=index, content_index=0, delta=piece,
                                  logprobs=[]) for piece in _pieces(part["text"])]
                    events.append(ev("response.output_text.done", item_id=item_id, output_index=index, content_index=0,
                                     text=part["text"], logprobs=[]))
                else:
                    events += [ev("response.refusal.delta", item_id=item_id, output_index=index, content_index=0, delta=piece)
                               for piece in _pieces(part["refusal"])]
                    events.append(ev("response.refusal.done", item_id=item_id, output_index=index, content_index=0, refusal=part["refusal"]))
                events.append(ev("response.content_part.done", item_id=item_id, output_index=index, content_index=0, part=part))
            else:
                events.append(ev("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "arguments": ""}))
                events += [ev("response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=piece)
                           for piece in _halves(item["arguments"])]
                events.append(ev("response.function_call_arguments.done", item_id=item_id, output_index=index, arguments=item["arguments"]))
            events.append(ev("response.output_item.done", output_index=index, item=item))
        events.append(ev("response.incomplete" if incomplete else "response.completed", response=response))
        return await self._stream(request, seen, events, (input_tokens, output_tokens))

    async def models(self, request: web.Request) -> web.Response:
        seen = await self._receive(request)
        if (early := await self._misbehave_before(request, seen)) is not None:
            return early  # type: ignore[return-value]
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "standin"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    # -- Anthropic --------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        seen = await self._receive(request)
        if (early := await self._misbehave_before(request, seen)) is not None:
            return early
        body = seen.body or {}
        messages = body.get("messages") or []
        input_tokens = _anthropic_input_tokens(body)
        tools = [(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or [] if isinstance(t, dict)]
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        content = last.get("content")
        after_tool = isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
        choice = body.get("tool_choice")
        choice = ({"any": "required"}.get(choice.get("type"), choice.get("name") or choice.get("type"))) if isinstance(choice, dict) else None
        plan = self._plan(_last_user(messages), tools, choice, after_tool, "toolu_standin")
        output_tokens = self._completion_tokens(plan)
        stop_reason = "tool_use" if plan.calls else {"end": "end_turn", "length": "max_tokens", "refusal": "refusal"}[plan.stop]
        cached = min(plan.cached_tokens, input_tokens)
        ident, model = f"msg_standin{next(self._ids)}", body.get("model")
        usage_on = self._usage_on
        blocks: list[dict] = []
        if plan.reasoning:
            blocks.append({"type": "thinking", "thinking": plan.reasoning, "signature": plan.signature})
        if plan.text:
            blocks.append({"type": "text", "text": plan.text})
        for call_id, name, arguments in plan.calls:
            blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": json.loads(arguments)})
        if body.get("stream") is not True:
            payload: dict[str, Any] = {
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": None,
            }
            if usage_on:
                payload["usage"] = {
                    "input_tokens": input_tokens - cached,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": cached,
                    "output_tokens": output_tokens,
                    "service_tier": "standard",
                }
            elif self._empty_usage:
                payload["usage"] = {}
            return await self._json(seen, payload, (input_tokens, output_tokens))
        start_usage = {"input_tokens": input_tokens - cached, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
                       "output_tokens": 1}
        message: dict[str, Any] = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        if usage_on:
            message["usage"] = start_usage
        elif self._empty_usage:
            message["usage"] = {}
        events = [_sse({"type": "message_start", "message": message}, "message_start")]
        for index, block in enumerate(blocks):
            kind = block["type"]
            empty = {"type": "text", "text": ""} if kind == "text" else {
                "type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else {**block, "input": {}}
            events.append(_sse({"type": "content_block_start", "index": index, "content_block": empty}, "content_block_start"))
            if index == 0:
                events.append(_sse({"type": "ping"}, "ping"))
            if kind == "text":
                deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
            elif kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _pieces(block["thinking"])]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            else:
                deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in _halves(json.dumps(block["input"]))]
            events += [_sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta") for d in deltas]
            events.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
        if usage_on:
            delta["usage"] = {"output_tokens": output_tokens}
        elif self._empty_usage:
            delta["usage"] = {}
        events.append(_sse(delta, "message_delta"))
        events.append(_sse({"type": "message_stop"}, "message_stop"))
        return await self._stream(request, seen, events, (input_tokens, output_tokens))

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        seen = await self._receive(request)
        if (early := await self._misbehave_before(request, seen)) is not None:
            return early
        seen.completed = True
        return web.json_response({"input_tokens": _anthropic_input_tokens(seen.body or {})})


# -- helpers ---------------------------------------------------------------------------


def reply_text(user_text: str) -> str:
    """The stand-in's completion: it quotes the user's last message."""
    return f"Stand-in reply. You said: {user_text} -- end of reply."


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data).encode() + b"\n\n"


def _text(content: object) -> str:
    """The text of an OpenAI/Anthropic message content: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_user(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _openai_usage(prompt: int, completion: int, cached: int = 0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _halves(text: str) -> list[str]:
    """Tool arguments in two pieces, so a client must join them."""
    middle = len(text) // 2
    return [text[:middle], text[middle:]] if middle else [text]


def _tools_to_call(tools: list[tuple[str, dict]], choice: object, user_text: str, after_tool: bool) -> list[tuple[str, dict]]:
    """The tools a model would call now: the one forced, else those the user named (else the first), unless a
    tool's result is what it answers."""
    if not tools or choice == "none":
        return []
    by_name = dict(tools)
    if isinstance(choice, str) and choice in by_name:
        return [(choice, by_name[choice])]
    if after_tool and choice != "required":
        return []
    named = sorted((found.start(), name) for name in by_name if (found := re.search(rf"\b{re.escape(name)}\b", user_text)))
    return [(name, by_name[name]) for _, name in named] or [tools[0]]


def _arguments(schema: dict, user_text: str) -> dict:
    """The required arguments: strings from the user's `backticked` snippets, in order; other types empty."""
    snippets = re.findall(r"`([^`]+)`", user_text)
    properties = schema.get("properties") or {}
    out: dict = {}
    for name in schema.get("required") or []:
        kind = (properties.get(name) or {}).get("type")
        out[name] = (snippets.pop(0) if snippets else "") if kind in ("string", None) else {"integer": 0, "number": 0,
                     "boolean": False, "array": []}.get(kind, {})
    return out


def _responses_input(body: dict) -> tuple[str, str]:
    """(the last user text, all input text) of a Responses API request."""
    given = body.get("input")
    instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else ""
    if isinstance(given, str):
        return given, f"{instructions} {given}"
    texts, last_user = [], ""
    for item in given or []:
        if isinstance(item, dict):
            text = _text(item.get("content"))
            texts.append(text)
            if item.get("role") == "user":
                last_user = text
    return last_user, " ".join([instructions, *texts])


def _anthropic_input_tokens(body: dict) -> int:
    system = body.get("system")
    total = count_tokens(_text(system)) if system else 0
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += count_tokens(_text(message.get("content"))) + 4
    return total


def standin_config(
    standin: StandIn,
    *,
    max_body_bytes: int | None = None,
    first_byte_timeout: float | None = None,
    idle_timeout: float | None = None,
    extra: str = "",
) -> str:
    """A daemon config routing test models to the stand-in, secrets by `env:` reference.

    gpt-test, gpt-test-mini, embed-test → the openai-kind provider at the stand-in's /v1;
    claude-test → the anthropic-kind provider at the stand-in's base URL. The client-facing
    names differ from the upstream ones, so tests can see the route's model was sent.
    """
    server = f"[server]\nmax_body_bytes = {max_body_bytes}\n" if max_body_bytes else ""
    timeouts = ""
    if first_byte_timeout is not None:
        timeouts += f"first_byte_timeout = {first_byte_timeout}\n"
    if idle_timeout is not None:
        timeouts += f"idle_timeout = {idle_timeout}\n"
    return f"""
{server}
[[providers]]
name = "standin-openai"
kind = "openai"
base_url = "{standin.openai_base}"
api_key = "env:{OPENAI_KEY_ENV}"
{timeouts}
[[providers]]
name = "standin-anthropic"
kind = "anthropic"
base_url = "{standin.url}"
api_key = "env:{ANTHROPIC_KEY_ENV}"
{timeouts}
[[models]]
name = "gpt-test"
routes = [{{ provider = "standin-openai", model = "standin-gpt" }}]

[[models]]
name = "gpt-test-mini"
routes = [{{ provider = "standin-openai", model = "standin-gpt-mini" }}]

[[models]]
name = "embed-test"
routes = [{{ provider = "standin-openai", model = "standin-embed" }}]

[[models]]
name = "claude-test"
routes = [{{ provider = "standin-anthropic", model = "standin-claude" }}]

{extra}
"""
