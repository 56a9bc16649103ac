"""Anthropic Messages streams: a provider's events read into a `Sink`, and a `Sink` written as a caller's events.

The caller gets Anthropic's exact sequence: one `message_start` (with the input tokens known so far:
the gateway's estimate until the provider reports them), `content_block_start`/`delta`/`stop` for
each block in turn (text, thinking, tool_use, never one inside another), `input_json_delta` for tool
arguments, one `message_delta` with the stop reason and the provider's usage, `message_stop`.
"""

from __future__ import annotations

import orjson

from noor_daemon.gateway.provider_errors import ProviderError, from_object, type_in
from noor_daemon.gateway.translate import ir
from noor_daemon.gateway.translate.messages import STOP_REASONS, STOP_REASONS_OUT, read_usage, write_usage
from noor_daemon.gateway.translate.stream import Decoder, Sink, string_end
from noor_daemon.gateway.wire.anthropic import _STATUS_OF_TYPE, error_document
from noor_daemon.gateway.wire.sse import event_data, event_field

_DELTA_EVENT = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT = b',"delta":{"type":"text_delta","text":"'
"""A text delta (most of a stream), as Anthropic writes it."""


class MessagesDecoder(Decoder):
    def __init__(self, sink: Sink, scrub) -> None:
        super().__init__(sink, scrub)
        self.stop = ir.STOP_END
        self.stop_sequence: str | None = None
        self.usage: dict = {}

    def feed(self, event: bytes) -> None:
        data = event_data(event)
        if data is None or self.finished:
            return
        body = orjson.loads(data)
        kind = body.get("type") if isinstance(body, dict) else None
        sink = self.sink
        if kind == "content_block_delta":
            delta = body.get("delta") or {}
            what = delta.get("type")
            if what == "text_delta":
                sink.text(delta.get("text") or "")
            elif what == "input_json_delta":
                if delta.get("partial_json"):
                    sink.tool_arguments(delta["partial_json"])
            elif what == "thinking_delta":
                sink.reasoning(delta.get("thinking") or "")
            elif what == "signature_delta":
                sink.signature(delta.get("signature") or "")
        elif kind == "content_block_start":
            block = body.get("content_block") or {}
            what = block.get("type")
            if what == "text":
                if block.get("text"):
                    sink.text(block["text"])
            elif what == "tool_use":
                sink.tool_call(str(block.get("id")), str(block.get("name")))
                if block.get("input"):
                    sink.tool_arguments(orjson.dumps(block["input"]).decode())
            elif what == "thinking":
                sink.reasoning(block.get("thinking") or "")
            elif what == "redacted_thinking":
                sink.redacted_reasoning(str(block.get("data") or ""))
        elif kind == "content_block_stop":
            sink.end_block()
        elif kind == "message_start":
            message = body.get("message") or {}
            self.started = True
            if isinstance(message.get("usage"), dict):
                self.usage.update(message["usage"])
            sink.start(str(message.get("id") or "msg_noor"), str(message.get("model") or ""), None)
        elif kind == "message_delta":
            delta = body.get("delta") or {}
            if delta.get("stop_reason"):
                self.stop = STOP_REASONS.get(delta["stop_reason"], ir.STOP_END)
            if isinstance(delta.get("stop_sequence"), str):
                self.stop_sequence = delta["stop_sequence"]
            if isinstance(body.get("usage"), dict):
                self.usage.update({k: v for k, v in body["usage"].items() if v is not None})
        elif kind == "message_stop":
            self.close()
        elif kind == "error" or (kind is None and event_field(event, b"event") == b"error"):
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            self.finished = True
            status = _STATUS_OF_TYPE.get(error.get("type"), 500) if isinstance(error.get("type"), str) else 500
            sink.fail(from_object(status, error, self.scrub, "anthropic"))

    def piece(self, event: bytes) -> tuple[int, int] | None:
        if not event.startswith(_DELTA_EVENT) or not self.started or self.finished:
            return None
        at = event.find(_TEXT, len(_DELTA_EVENT))
        if at < 0 or not event[len(_DELTA_EVENT) : at].isdigit():
            return None
        start = at + len(_TEXT) - 1
        end = string_end(event, start)
        if end < 0 or len(event) != end + 5 or not event.endswith(b"}}\n\n"):
            return None
        return start, end

    def ending(self) -> tuple[str, str | None, ir.Usage | None]:
        return self.stop, self.stop_sequence, read_usage(self.usage)


_BLOCK_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":'
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'


class MessagesEncoder(Sink):
    """Writes Anthropic's event sequence, one content block at a time."""

    def __init__(self, input_estimate: int) -> None:
        super().__init__()
        self.input_estimate = input_estimate
        self.index = -1
        self.open: str | None = None
        """The kind of the open block: text, thinking or tool_use."""
        self.tools = 0

    def start(self, ident: str, model: str, created: int | None) -> None:
        message = {
            "id": ident, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_estimate, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": 0},
        }
        self.out.append(b"event: message_start\ndata: " + orjson.dumps({"type": "message_start", "message": message}) + b"\n\n")

    def _open(self, kind: str, block: bytes) -> None:
        self._close()
        self.index += 1
        self.open = kind
        self.idx = str(self.index).encode()
        self.out.append(_BLOCK_START + self.idx + b',"content_block":' + block + b"}\n\n")

    def text(self, delta: str) -> None:
        if self.open != "text":
            self._open("text", b'{"type":"text","text":""}')
        if delta:
            self.out.append(_DELTA + self.idx + b',"delta":{"type":"text_delta","text":' + orjson.dumps(delta) + b"}}\n\n")

    def refusal(self, delta: str) -> None:
        self.text(delta)  # Claude's refusal is its words, with stop_reason "refusal"

    def text_json(self, raw: bytes) -> None:
        if self.open != "text":
            self._open("text", b'{"type":"text","text":""}')
        if raw != b'""':
            self.out.append(_DELTA + self.idx + b',"delta":{"type":"text_delta","text":' + raw + b"}}\n\n")

    def text_pieces(self, pieces: list[bytes]) -> None:
        if b'""' in pieces:  # an empty piece writes no event
            super().text_pieces(pieces)
            return
        if self.open != "text":
            self._open("text", b'{"type":"text","text":""}')
        before, after = _DELTA + self.idx + b',"delta":{"type":"text_delta","text":', b"}}\n\n"
        self.out.append(before + (after + before).join(pieces) + after)

    def reasoning(self, delta: str) -> None:
        if self.open != "thinking":
            self._open("thinking", b'{"type":"thinking","thinking":"","signature":""}')
        if delta:
            self.out.append(_DELTA + self.idx + b',"delta":{"type":"thinking_delta","thinking":' + orjson.dumps(delta) + b"}}\n\n")

    def signature(self, value: str) -> None:
        if self.open != "thinking":
            self._open("thinking", b'{"type":"thinking","thinking":"","signature":""}')
        self.out.append(_DELTA + self.idx + b',"delta":{"type":"signature_delta","signature":' + orjson.dumps(value) + b"}}\n\n")

    def redacted_reasoning(self, data: str) -> None:
        self._open("redacted_thinking", orjson.dumps({"type": "redacted_thinking", "data": data}))
        self._close()

    def tool_call(self, call_id: str, name: str) -> None:
        self.tools += 1
        self._open("tool_use", orjson.dumps({"type": "tool_use", "id": call_id, "name": name, "input": {}}))

    def tool_arguments(self, delta: str) -> None:
        if self.open != "tool_use":
            raise ValueError("tool arguments outside a tool call")
        self.out.append(_DELTA + self.idx + b',"delta":{"type":"input_json_delta","partial_json":' + orjson.dumps(delta) + b"}}\n\n")

    def end_block(self) -> None:
        """A text block stays open across the provider's text items (the whole answer joins them into one block too)."""
        if self.open is not None and self.open != "text":
            self._close()

    def _close(self) -> None:
        if self.open is not None:
            self.out.append(_STOP + self.idx + b"}\n\n")
            self.open = None

    def finish(self, stop: str, stop_sequence: str | None, usage: ir.Usage | None) -> None:
        self._close()
        if stop == ir.STOP_END and self.tools:
            stop = ir.STOP_TOOL
        delta = {"type": "message_delta", "delta": {"stop_reason": STOP_REASONS_OUT[stop], "stop_sequence": stop_sequence},
                 "usage": write_usage(usage) if usage is not None else {"output_tokens": 0}}
        self.out.append(b"event: message_delta\ndata: " + orjson.dumps(delta) + b"\n\n")
        self.out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')

    def fail(self, error: ProviderError) -> None:
        document = error_document(error.message, type_in(error, "anthropic"))
        self.out.append(b"event: error\ndata: " + orjson.dumps(document) + b"\n\n")
