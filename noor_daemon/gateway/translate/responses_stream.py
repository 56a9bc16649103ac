"""Responses API streams: a provider's events read into a `Sink`, and a `Sink` written as a caller's events.

The caller gets the API's sequence: `response.created`, `response.in_progress`, then for each output
item `response.output_item.added`, its parts (`content_part.added`, or `reasoning_summary_part.added`),
its deltas and their `.done` events, `response.output_item.done`; and last `response.completed` (or
`response.incomplete`) with every item and the provider's usage. Events are numbered.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from noor_daemon.gateway.provider_errors import ProviderError, from_object, type_in
from noor_daemon.gateway.translate import ir
from noor_daemon.gateway.translate.responses import (
    function_call_item,
    item_ids,
    read_usage,
    reasoning_item,
    response_document,
    status_of,
)
from noor_daemon.gateway.translate.stream import Decoder, Sink
from noor_daemon.gateway.wire.openai import error_status
from noor_daemon.gateway.wire.sse import event_data, event_field


class ResponsesDecoder(Decoder):
    def __init__(self, sink: Sink, scrub) -> None:
        super().__init__(sink, scrub)
        self.stop = ir.STOP_END
        self.usage: ir.Usage | None = None
        self.calls = 0
        self.arguments_seen: set[int] = set()
        self.refused = False

    def feed(self, event: bytes) -> None:
        data = event_data(event)
        if data is None or self.finished:
            return
        body = orjson.loads(data)
        kind = body.get("type") if isinstance(body, dict) else None
        if kind is None:
            name = event_field(event, b"event")
            kind = name.decode() if name else None
        sink = self.sink
        if kind == "response.output_text.delta":
            sink.text(body.get("delta") or "")
        elif kind == "response.function_call_arguments.delta":
            self.arguments_seen.add(body.get("output_index", -1))
            if body.get("delta"):
                sink.tool_arguments(body["delta"])
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            sink.reasoning(body.get("delta") or "")
        elif kind == "response.refusal.delta":
            self.refused = True
            sink.refusal(body.get("delta") or "")
        elif kind == "response.output_item.added":
            item = body.get("item") or {}
            if item.get("type") == "function_call":
                self.calls += 1
                sink.tool_call(str(item.get("call_id") or item.get("id")), str(item.get("name") or ""))
                if item.get("arguments"):
                    self.arguments_seen.add(body.get("output_index", -1))
                    sink.tool_arguments(item["arguments"])
        elif kind == "response.output_item.done":
            item = body.get("item") or {}
            index = body.get("output_index", -1)
            if item.get("type") == "function_call" and index not in self.arguments_seen and item.get("arguments"):
                sink.tool_arguments(item["arguments"])  # a server that sends the arguments whole, at the end
            sink.end_block()
        elif kind == "response.created":
            response = body.get("response") or {}
            self.started = True
            created = response.get("created_at")
            sink.start(str(response.get("id") or "resp_noor"), str(response.get("model") or ""), created if isinstance(created, int) else None)
        elif kind in ("response.completed", "response.incomplete"):
            response = body.get("response") or {}
            self.usage = read_usage(response.get("usage"))
            if kind == "response.incomplete":
                reason = (response.get("incomplete_details") or {}).get("reason")
                self.stop = ir.STOP_FILTER if reason == "content_filter" else ir.STOP_LENGTH
            self.close()
        elif kind == "response.failed":
            response = body.get("response") or {}
            error = response.get("error") if isinstance(response.get("error"), dict) else {}
            self.finished = True
            sink.fail(from_object(error_status(error), error, self.scrub, "openai"))
        elif kind == "error":  # the API's error event: its code is its type
            self.finished = True
            error = {"type": body.get("code"), "code": body.get("code"), "message": body.get("message"), "param": body.get("param")}
            sink.fail(from_object(error_status(body), error, self.scrub, "openai"))

    def ending(self) -> tuple[str, str | None, ir.Usage | None]:
        stop = self.stop
        if self.refused:
            stop = ir.STOP_FILTER
        elif stop == ir.STOP_END and self.calls:
            stop = ir.STOP_TOOL
        return stop, None, self.usage


class ResponsesEncoder(Sink):
    """Writes the Responses API's event sequence, one output item at a time."""

    def __init__(self, request: ir.Request, now: int) -> None:
        super().__init__()
        self.request = request
        self.now = now
        self.sequence = 0
        self.items: list[dict] = []
        """Every finished output item, for `response.completed`."""
        self.open: dict | None = None
        self.part: str | None = None
        """The kind of the open message's content part: output_text or refusal."""
        self.parts: list[dict] = []
        """The open message's finished content parts."""
        self.refused = False
        self.buffer: list[str] = []
        self.signed: str | None = None
        self.redacted: str | None = None

    def _event(self, kind: str, fields: dict) -> None:
        body = orjson.dumps({"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1
        self.out.append(b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n")

    def start(self, ident: str, model: str, created: int | None) -> None:
        self.ident, self.model, self.created = ident, model, created or self.now
        self.stem = item_ids(ident)
        pending = response_document(ident, model, self.created, self.request, "in_progress", [], None)
        self._event("response.created", {"response": pending})
        self._event("response.in_progress", {"response": pending})

    def _index(self) -> int:
        return len(self.items)

    def _open_item(self, make: Callable[[int], dict]) -> None:
        """Close the open item, then open the one `make` builds for the next place in the output."""
        self._close()
        item = self.open = make(self._index())
        self.buffer = []
        self._event("response.output_item.added", {"output_index": self._index(), "item": item})

    def _message(self, part: str) -> dict:
        """The open message item, its content part of kind `part` (output_text or refusal) open too."""
        item = self.open
        if item is None or item["type"] != "message" or self.part != part:
            if item is None or item["type"] != "message":
                self._open_item(lambda n: {"id": f"msg_{self.stem}_{n}", "type": "message", "status": "in_progress",
                                           "role": "assistant", "content": []})
                item = self.open
            else:
                self._close_part()
            self.part = part
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []} if part == "output_text" else {
                "type": "refusal", "refusal": ""}
            self._event("response.content_part.added", {"item_id": item["id"], "output_index": self._index(),
                                                         "content_index": len(self.parts), "part": empty})
        return item

    def refusal(self, delta: str) -> None:
        item = self._message("refusal")
        self.refused = True
        self.buffer.append(delta)
        if delta:
            self._event("response.refusal.delta", {"item_id": item["id"], "output_index": self._index(),
                                                    "content_index": len(self.parts), "delta": delta})

    def text(self, delta: str) -> None:
        item = self._message("output_text")
        self.buffer.append(delta)
        if delta:
            head = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
            self.out.append(head + str(self.sequence).encode() + b',"item_id":' + orjson.dumps(item["id"]) + b',"output_index":'
                            + str(self._index()).encode() + b',"content_index":' + str(len(self.parts)).encode() + b',"delta":'
                            + orjson.dumps(delta) + b',"logprobs":[]}\n\n')
            self.sequence += 1

    def reasoning(self, delta: str) -> None:
        item = self.open
        if item is None or item["type"] != "reasoning":
            self._open_item(lambda n: {"id": f"rs_{self.stem}_{n}", "type": "reasoning", "summary": []})
            self.signed = self.redacted = None
            item = self.open
            self._event("response.reasoning_summary_part.added", {"item_id": item["id"], "output_index": self._index(),
                                                                   "summary_index": 0, "part": {"type": "summary_text", "text": ""}})
        self.buffer.append(delta)
        if delta:
            self._event("response.reasoning_summary_text.delta", {"item_id": item["id"], "output_index": self._index(),
                                                                   "summary_index": 0, "delta": delta})

    def signature(self, value: str) -> None:
        if self.open is None or self.open["type"] != "reasoning":
            self.reasoning("")
        self.signed = value

    def redacted_reasoning(self, data: str) -> None:
        self.reasoning("")
        self.redacted = data
        self._close()

    def tool_call(self, call_id: str, name: str) -> None:
        part = ir.ToolCall(call_id, name, "")
        self._open_item(lambda n: function_call_item(f"fc_{self.stem}_{n}", part, self.request, "in_progress"))

    def tool_arguments(self, delta: str) -> None:
        item = self.open
        if item is None or item["type"] != "function_call":
            raise ValueError("tool arguments outside a tool call")
        self.buffer.append(delta)
        self._event("response.function_call_arguments.delta", {"item_id": item["id"], "output_index": self._index(), "delta": delta})

    def end_block(self) -> None:
        """A message stays open across the provider's text blocks (the whole answer joins them into one message too)."""
        if self.open is not None and self.open["type"] != "message":
            self._close()

    def _close_part(self) -> None:
        """Finish the open message's content part (its `.done` events)."""
        item, index, whole = self.open, self._index(), "".join(self.buffer)
        at = len(self.parts)
        if self.part == "output_text":
            part = {"type": "output_text", "text": whole, "annotations": [], "logprobs": []}
            self._event("response.output_text.done", {"item_id": item["id"], "output_index": index, "content_index": at,
                                                       "text": whole, "logprobs": []})
        else:
            part = {"type": "refusal", "refusal": whole}
            self._event("response.refusal.done", {"item_id": item["id"], "output_index": index, "content_index": at, "refusal": whole})
        self._event("response.content_part.done", {"item_id": item["id"], "output_index": index, "content_index": at, "part": part})
        self.parts.append(part)
        self.buffer, self.part = [], None

    def _close(self) -> None:
        item = self.open
        if item is None:
            return
        index = self._index()
        whole = "".join(self.buffer)
        if item["type"] == "message":
            self._close_part()
            item = {**item, "status": "completed", "content": self.parts}
            self.parts = []
        elif item["type"] == "reasoning":
            reasoning = ir.Reasoning(whole, self.signed, self.redacted)
            if whole:
                self._event("response.reasoning_summary_text.done", {"item_id": item["id"], "output_index": index,
                                                                      "summary_index": 0, "text": whole})
            self._event("response.reasoning_summary_part.done", {"item_id": item["id"], "output_index": index, "summary_index": 0,
                                                                  "part": {"type": "summary_text", "text": whole}})
            item = reasoning_item(item["id"], reasoning, self.request)
        else:
            self._event("response.function_call_arguments.done", {"item_id": item["id"], "output_index": index, "arguments": whole})
            item = {**item, "status": "completed", "arguments": whole}
        self.open = None
        self._event("response.output_item.done", {"output_index": index, "item": item})
        self.items.append(item)

    def finish(self, stop: str, stop_sequence: str | None, usage: ir.Usage | None) -> None:
        self._close()
        status = "completed" if self.refused else status_of(stop)
        document = response_document(self.ident, self.model, self.created, self.request, status, self.items, usage, stop)
        self._event("response.completed" if status == "completed" else "response.incomplete", {"response": document})

    def fail(self, error: ProviderError) -> None:
        self._event("error", {"code": error.code or type_in(error, "openai"), "message": error.message, "param": error.param})
