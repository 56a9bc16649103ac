"""Chat Completions streams: a provider's chunks read into a `Sink`, and a `Sink` written as a caller's chunks.

A provider's usage arrives in the last chunk (the gateway always asks for it), after the chunk with
the finish reason, so the answer is finished on `[DONE]` (or at the end of the stream).
"""

from __future__ import annotations

import orjson

from noor_daemon.gateway.provider_errors import ProviderError, from_object, type_in
from noor_daemon.gateway.translate import ir
from noor_daemon.gateway.translate.chat import FINISH_REASONS, STOP_REASONS, read_usage, write_usage
from noor_daemon.gateway.translate.stream import Decoder, Sink, string_end
from noor_daemon.gateway.wire.openai import error_document, error_status
from noor_daemon.gateway.wire.sse import event_data

_CONTENT = b'"choices":[{"index":0,"delta":{"content":"'
_AFTER_CONTENT = (b'},"logprobs":null,"finish_reason":null}]', b'},"finish_reason":null}]')
"""A chunk that is a piece of text and nothing else (most of a stream): one choice whose delta is only content, no
finish reason, no usage (OpenAI's `"usage":null` and `"obfuscation"` may follow the choices)."""


class ChatDecoder(Decoder):
    def __init__(self, sink: Sink, scrub) -> None:
        super().__init__(sink, scrub)
        self.stop: str | None = None
        self.usage: ir.Usage | None = None
        self.calls: dict[int, str] = {}
        """Tool calls by their index in the provider's chunks → their id."""
        self.current_call: int | None = None
        self.refused = False

    def feed(self, event: bytes) -> None:
        data = event_data(event)
        if data is None or self.finished:
            return
        if data == b"[DONE]":
            self.close()
            return
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            return
        if isinstance(chunk.get("error"), dict) and "choices" not in chunk:
            self.finished = True
            self.sink.fail(from_object(error_status(chunk["error"]), chunk["error"], self.scrub, "openai"))
            return
        sink = self.sink
        if not self.started:
            self.started = True
            created = chunk.get("created")
            sink.start(str(chunk.get("id") or "chatcmpl-noor"), str(chunk.get("model") or ""), created if isinstance(created, int) else None)
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if len(delta) == 1 and content:  # most chunks: a piece of text and nothing else
                    sink.text(content)
                else:
                    self._delta(delta, content)
            finish = choice.get("finish_reason")
            if finish:
                self.stop = STOP_REASONS.get(finish, ir.STOP_END)
        usage = chunk.get("usage")
        if usage:
            self.usage = read_usage(usage)

    def piece(self, event: bytes) -> tuple[int, int] | None:
        at = event.find(_CONTENT)
        if at < 0 or not self.started or self.finished or not event.startswith(b"data:") or b'"usage":{' in event:
            return None
        start = at + len(_CONTENT) - 1
        end = string_end(event, start)
        if end < 0 or not (event.startswith(_AFTER_CONTENT[0], end + 1) or event.startswith(_AFTER_CONTENT[1], end + 1)):
            return None
        if event.count(b"\n") != 2:  # one data line, then the blank line
            return None
        return start, end

    def _delta(self, delta: dict, content: object) -> None:
        sink = self.sink
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if thought:
            sink.reasoning(thought)
        if content:
            sink.text(content)
        refusal = delta.get("refusal")
        if refusal:
            self.refused = True
            sink.refusal(refusal)
        calls = delta.get("tool_calls")
        if calls:
            self._tool_calls(calls)

    def _tool_calls(self, calls: list) -> None:
        for call in calls:
            index = call.get("index", 0)
            function = call.get("function") or {}
            if index not in self.calls:
                ident = call.get("id") or f"call_{len(self.calls)}"
                self.calls[index] = ident
                self.current_call = index
                self.sink.tool_call(ident, function.get("name") or "")
            elif index != self.current_call:
                # Arguments for a call whose block is closed: the caller's format cannot reopen it.
                raise ValueError("tool-call arguments interleaved across calls")
            arguments = function.get("arguments")
            if arguments:
                self.sink.tool_arguments(arguments)

    def ending(self) -> tuple[str, str | None, ir.Usage | None]:
        stop = self.stop or ir.STOP_END
        if self.refused:
            stop = ir.STOP_FILTER
        elif stop == ir.STOP_END and self.calls:
            stop = ir.STOP_TOOL  # some servers say "stop" after tool calls
        return stop, None, self.usage


class ChatEncoder(Sink):
    """Writes Chat Completions chunks; the usage chunk only for a caller that asked `include_usage`."""

    def __init__(self, include_usage: bool, now: int) -> None:
        super().__init__()
        self.include_usage = include_usage
        self.now = now
        self.head = b""
        self.calls = -1
        self.in_call = False
        self.refused = False

    def _chunk(self, delta: bytes, finish: bytes = b"null") -> None:
        self.out.append(self.head + delta + b',"logprobs":null,"finish_reason":' + finish + b"}]}\n\n")

    def start(self, ident: str, model: str, created: int | None) -> None:
        base = orjson.dumps({"id": ident, "object": "chat.completion.chunk", "created": created or self.now, "model": model})
        self.base = base[:-1]
        self.head = b"data: " + self.base + b',"choices":[{"index":0,"delta":'
        self._chunk(b'{"role":"assistant","content":null}')

    def text(self, delta: str) -> None:
        self.in_call = False
        self._chunk(b'{"content":' + orjson.dumps(delta) + b"}")

    def text_json(self, raw: bytes) -> None:
        self.in_call = False
        self._chunk(b'{"content":' + raw + b"}")

    def text_pieces(self, pieces: list[bytes]) -> None:
        self.in_call = False
        before, after = self.head + b'{"content":', b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self.out.append(before + (after + before).join(pieces) + after)

    def refusal(self, delta: str) -> None:
        self.refused = True
        self._chunk(b'{"refusal":' + orjson.dumps(delta) + b"}")

    def reasoning(self, delta: str) -> None:
        self.in_call = False
        self._chunk(b'{"reasoning_content":' + orjson.dumps(delta) + b"}")

    def signature(self, value: str) -> None:
        pass  # Chat Completions has no place for a thinking block's signature

    def redacted_reasoning(self, data: str) -> None:
        pass  # nor for reasoning the provider encrypted

    def tool_call(self, call_id: str, name: str) -> None:
        self.calls += 1
        self.in_call = True
        call = {"index": self.calls, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        self._chunk(b'{"tool_calls":[' + orjson.dumps(call) + b"]}")

    def tool_arguments(self, delta: str) -> None:
        index = str(self.calls).encode()
        self._chunk(b'{"tool_calls":[{"index":' + index + b',"function":{"arguments":' + orjson.dumps(delta) + b"}}]}")

    def end_block(self) -> None:
        self.in_call = False

    def finish(self, stop: str, stop_sequence: str | None, usage: ir.Usage | None) -> None:
        self._chunk(b"{}", b'"' + (b"stop" if self.refused else FINISH_REASONS[stop].encode()) + b'"')
        if self.include_usage and usage is not None:
            self.out.append(b"data: " + self.base + b',"choices":[],"usage":' + orjson.dumps(write_usage(usage)) + b"}\n\n")
        self.out.append(b"data: [DONE]\n\n")

    def fail(self, error: ProviderError) -> None:
        document = error_document(error.message, type_in(error, "openai"), error.param, error.code)
        self.out.append(b"data: " + orjson.dumps(document) + b"\n\n")
