"""The simulator's answers written as each real API writes them, whole or streamed event by event.

Chat Completions (tool calls as `tool_calls` deltas, a usage chunk when asked), legacy Completions,
the Responses API (its full event sequence, function calls as output items), Anthropic Messages
(`tool_use` blocks with `input_json_delta`), and embeddings.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from noor_daemon.gateway.simulator import Plan

MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMENSIONS = 3072

_FINISH = {"end": "stop", "length": "length", "tool": "tool_calls"}
_STOP = {"end": "end_turn", "length": "max_tokens", "tool": "tool_use"}


def _sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _pieces(plan: Plan) -> list[str]:
    return [word if i == 0 else " " + word for i, word in enumerate(plan.words)]


def _argument_pieces(arguments: str) -> list[str]:
    """Tool arguments streamed in a few pieces, as the APIs do."""
    size = max(1, len(arguments) // 3)
    return [arguments[i:i + size] for i in range(0, len(arguments), size)] or [""]


# -- Chat Completions -----------------------------------------------------------------------------


def chat(plan: Plan, payload: dict, stream: bool) -> list[bytes]:
    ident, created = f"chatcmpl-sim{plan.ident}", int(time.time())
    usage = {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.completion_tokens,
             "total_tokens": plan.prompt_tokens + plan.completion_tokens}
    calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in plan.calls]
    if not stream:
        message: dict = {"role": "assistant", "content": plan.text if plan.words else None}
        if calls:
            message["tool_calls"] = calls
        return [orjson.dumps({
            "id": ident, "object": "chat.completion", "created": created, "model": plan.model,
            "system_fingerprint": "noor-simulator",
            "choices": [{"index": 0, "message": message, "finish_reason": _FINISH[plan.stop], "logprobs": None}],
            "usage": usage,
        })]
    include_usage = (payload.get("stream_options") or {}).get("include_usage") is True
    base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": plan.model, "system_fingerprint": "noor-simulator"}

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    parts = [chunk({"role": "assistant", "content": "" if plan.words else None})]
    parts += [chunk({"content": piece}) for piece in _pieces(plan)]
    for index, call in enumerate(plan.calls):
        head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        parts.append(chunk({"tool_calls": [head]}))
        parts += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}) for piece in _argument_pieces(call.arguments)]
    parts.append(chunk({}, _FINISH[plan.stop]))
    if include_usage:
        parts.append(_sse({**base, "choices": [], "usage": usage}))
    parts.append(b"data: [DONE]\n\n")
    return parts


def completions(plan: Plan, payload: dict, stream: bool) -> list[bytes]:
    usage = {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.completion_tokens,
             "total_tokens": plan.prompt_tokens + plan.completion_tokens}
    base = {"id": f"cmpl-sim{plan.ident}", "object": "text_completion", "created": int(time.time()), "model": plan.model}
    finish = _FINISH[plan.stop] if plan.stop != "tool" else "stop"
    if not stream:
        choice = {"index": 0, "text": plan.text, "finish_reason": finish, "logprobs": None}
        return [orjson.dumps({**base, "choices": [choice], "usage": usage})]
    parts = [_sse({**base, "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]}) for piece in _pieces(plan)]
    parts.append(_sse({**base, "choices": [{"index": 0, "text": "", "finish_reason": finish, "logprobs": None}]}))
    if (payload.get("stream_options") or {}).get("include_usage") is True:
        parts.append(_sse({**base, "choices": [], "usage": usage}))
    parts.append(b"data: [DONE]\n\n")
    return parts


# -- the Responses API ----------------------------------------------------------------------------


def responses(plan: Plan, payload: dict, stream: bool) -> list[bytes]:
    message_id = f"msg_sim{plan.ident}"
    output: list[dict] = []
    if plan.words:
        output.append({"type": "message", "id": message_id, "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": plan.text, "annotations": [], "logprobs": []}]})
    for n, call in enumerate(plan.calls):
        output.append({"type": "function_call", "id": f"fc_sim{plan.ident}{n}", "status": "completed", "call_id": call.id,
                       "name": call.name, "arguments": call.arguments})
    incomplete = plan.stop == "length"
    response = {
        "id": f"resp_sim{plan.ident}", "object": "response", "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed", "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": payload.get("instructions") if isinstance(payload.get("instructions"), str) else None,
        "max_output_tokens": payload.get("max_output_tokens"), "model": plan.model, "output": output,
        "parallel_tool_calls": payload.get("parallel_tool_calls") is not False, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": False, "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": {"input_tokens": plan.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": plan.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": plan.prompt_tokens + plan.completion_tokens},
        "metadata": {},
    }
    if not stream:
        return [orjson.dumps(response)]
    sequence = iter(range(1 << 30))

    def event(kind: str, **fields: object) -> bytes:
        return _sse({"type": kind, "sequence_number": next(sequence), **fields}, kind)

    pending = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    parts = [event("response.created", response=pending), event("response.in_progress", response=pending)]
    for index, item in enumerate(output):
        if item["type"] == "message":
            part = item["content"][0]
            parts.append(event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}))
            parts.append(event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                               part={**part, "text": ""}))
            parts += [event("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0, delta=piece,
                            logprobs=[]) for piece in _pieces(plan)]
            parts.append(event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                               text=part["text"], logprobs=[]))
            parts.append(event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part))
        else:
            parts.append(event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "arguments": ""}))
            parts += [event("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece)
                      for piece in _argument_pieces(item["arguments"])]
            parts.append(event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                               arguments=item["arguments"]))
        parts.append(event("response.output_item.done", output_index=index, item=item))
    parts.append(event("response.incomplete" if incomplete else "response.completed", response=response))
    return parts


# -- Anthropic Messages ---------------------------------------------------------------------------


def messages(plan: Plan, payload: dict, stream: bool) -> list[bytes]:
    ident = f"msg_sim{plan.ident}"
    content: list[dict] = []
    if plan.words:
        content.append({"type": "text", "text": plan.text})
    for call in plan.calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": orjson.loads(call.arguments)})
    if not stream:
        return [orjson.dumps({
            "id": ident, "type": "message", "role": "assistant", "model": plan.model, "content": content,
            "stop_reason": _STOP[plan.stop], "stop_sequence": None,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens},
        })]
    start = {
        "type": "message_start",
        "message": {"id": ident, "type": "message", "role": "assistant", "model": plan.model, "content": [], "stop_reason": None,
                    "stop_sequence": None, "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": 1}},
    }
    parts = [_sse(start, "message_start")]
    index = 0
    if plan.words:
        parts.append(_sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"))
        for piece in _pieces(plan):
            parts.append(_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                              "content_block_delta"))
        parts.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        index = 1
    for n, call in enumerate(plan.calls, start=index):
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        parts.append(_sse({"type": "content_block_start", "index": n, "content_block": block}, "content_block_start"))
        for piece in _argument_pieces(call.arguments):
            parts.append(_sse({"type": "content_block_delta", "index": n, "delta": {"type": "input_json_delta", "partial_json": piece}},
                              "content_block_delta"))
        parts.append(_sse({"type": "content_block_stop", "index": n}, "content_block_stop"))
    parts.append(_sse({"type": "message_delta", "delta": {"stop_reason": _STOP[plan.stop], "stop_sequence": None},
                       "usage": {"output_tokens": plan.completion_tokens}}, "message_delta"))
    parts.append(_sse({"type": "message_stop"}, "message_stop"))
    return parts


WRITERS = {"chat/completions": chat, "completions": completions, "responses": responses, "messages": messages}


# -- embeddings -----------------------------------------------------------------------------------


def embeddings(payload: dict, seed: int, prompt: int) -> bytes:
    inputs = payload.get("input")
    items = inputs if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else [inputs]
    dims = payload.get("dimensions") if isinstance(payload.get("dimensions"), int) else 64
    data = []
    for index, _ in enumerate(items):
        vector = [math.sin(seed % 1000 + index * 31 + d) for d in range(dims)]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        data.append({"object": "embedding", "index": index, "embedding": [round(v / norm, 6) for v in vector]})
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": payload.get("model", "simulator"),
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
    )
