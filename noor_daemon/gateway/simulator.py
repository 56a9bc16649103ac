"""The built-in simulated LLM: deterministic answers, realistic streaming, no network.

It lets a new user see the gateway work offline and powers `noor demo`. Every answer
says it comes from the simulator, so nobody mistakes it for a model.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator, Mapping

import orjson

from noor_daemon.gateway.wire.meter import estimate_tokens
from noor_daemon.presets import FORMAT_PATHS

_WORDS = (
    "the gateway meters every call and never stores what was said while tokens stream through "
    "quietly with latency counted and limits kept so teams can share one daemon safely on one machine"
).split()

SIMULATOR_LABEL = "[NoorAPI simulator]"


class SimulatedReply:
    def __init__(self, status: int, content_type: str, parts: list[bytes], first_delay: float, delay: float) -> None:
        self.status = status
        self.content_type = content_type
        self.headers = {"x-noor-simulator": "1"}
        self._parts = parts
        self._first_delay = first_delay
        self._delay = delay

    async def chunks(self) -> AsyncIterator[bytes]:
        for index, part in enumerate(self._parts):
            wait = self._first_delay if index == 0 else self._delay
            if wait:
                await asyncio.sleep(wait)
            yield part

    async def read(self) -> bytes:
        if self._first_delay or self._delay:
            await asyncio.sleep(self._first_delay + self._delay * len(self._parts))
        return b"".join(self._parts)

    def release(self) -> None:
        pass


class SimulatorUpstream:
    """Answers OpenAI chat, completions, embeddings, responses and Anthropic messages."""

    kind = "simulator"
    secrets: tuple[str, ...] = ()

    def __init__(self, name: str, latency_scale: float = 1.0) -> None:
        self.name = name
        self.latency_scale = latency_scale
        self.formats = set(FORMAT_PATHS.values())

    async def probe(self) -> bool:
        return True

    def forget_format(self, endpoint: str) -> bool:
        return False

    async def send(
        self, endpoint: str, body: bytes, client_headers: Mapping[str, str], deadline: float | None = None,
        model: str | None = None,
    ) -> SimulatedReply:
        payload = orjson.loads(body)
        seed = int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big")
        prompt_tokens = max(1, estimate_tokens(len(body)) - 8)
        limit = payload.get("max_tokens") or payload.get("max_output_tokens") or payload.get("max_completion_tokens")
        n_words = 12 + seed % 36
        if isinstance(limit, int) and limit > 0:
            n_words = min(n_words, limit)
        words = [SIMULATOR_LABEL] + [_WORDS[(seed + i * 7919) % len(_WORDS)] for i in range(n_words - 1)]
        model = payload.get("model", "simulator")
        stream = payload.get("stream") is True
        first, step = 0.12 * self.latency_scale, 0.012 * self.latency_scale
        build = {
            "chat/completions": _chat,
            "completions": _completion,
            "responses": _responses,
            "messages": _messages,
        }.get(endpoint)
        if endpoint == "embeddings":
            problem = _embeddings_problem(payload)
            if problem is not None:
                param, message = problem
                error = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
                return SimulatedReply(400, "application/json", [orjson.dumps(error)], 0, 0)
            return SimulatedReply(200, "application/json", [_embeddings(payload, seed, prompt_tokens)], first / 4, 0)
        if endpoint == "messages/count_tokens":
            return SimulatedReply(200, "application/json", [orjson.dumps({"input_tokens": prompt_tokens})], 0, 0)
        if build is None:
            return SimulatedReply(404, "application/json", [b'{"error":{"message":"not simulated"}}'], 0, 0)
        parts = build(payload, model, words, prompt_tokens, stream, seed)
        if not stream:
            return SimulatedReply(200, "application/json", parts, first + step * len(words), 0)
        return SimulatedReply(200, "text/event-stream", parts, first, step)


def _sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _chat(payload: dict, model: str, words: list[str], prompt: int, stream: bool, seed: int) -> list[bytes]:
    ident, created = f"chatcmpl-sim{seed:x}", int(time.time())
    usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
    text = " ".join(words)
    if not stream:
        return [
            orjson.dumps(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "noor-simulator",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
                    ],
                    "usage": usage,
                }
            )
        ]
    include_usage = (payload.get("stream_options") or {}).get("include_usage") is True
    base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "noor-simulator"}
    parts = [_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        parts.append(_sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
    parts.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if include_usage:
        parts.append(_sse({**base, "choices": [], "usage": usage}))
    parts.append(b"data: [DONE]\n\n")
    return parts


def _completion(payload: dict, model: str, words: list[str], prompt: int, stream: bool, seed: int) -> list[bytes]:
    ident, created = f"cmpl-sim{seed:x}", int(time.time())
    usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
    base = {"id": ident, "object": "text_completion", "created": created, "model": model}
    if not stream:
        choice = {"index": 0, "text": " ".join(words), "finish_reason": "stop", "logprobs": None}
        return [orjson.dumps({**base, "choices": [choice], "usage": usage})]
    parts = [
        _sse({**base, "choices": [{"index": 0, "text": (" " if i else "") + w, "finish_reason": None, "logprobs": None}]})
        for i, w in enumerate(words)
    ]
    if (payload.get("stream_options") or {}).get("include_usage") is True:
        parts.append(_sse({**base, "choices": [], "usage": usage}))
    parts.append(b"data: [DONE]\n\n")
    return parts


def _responses(payload: dict, model: str, words: list[str], prompt: int, stream: bool, seed: int) -> list[bytes]:
    text = " ".join(words)
    response = {
        "id": f"resp_sim{seed:x}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": f"msg_sim{seed:x}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {"input_tokens": prompt, "output_tokens": len(words), "total_tokens": prompt + len(words)},
    }
    if not stream:
        return [orjson.dumps(response)]
    parts = [_sse({"type": "response.created", "response": {**response, "status": "in_progress", "output": []}}, "response.created")]
    for i, word in enumerate(words):
        parts.append(
            _sse(
                {"type": "response.output_text.delta", "item_id": f"msg_sim{seed:x}", "output_index": 0, "content_index": 0, "delta": (" " if i else "") + word},
                "response.output_text.delta",
            )
        )
    parts.append(_sse({"type": "response.completed", "response": response}, "response.completed"))
    return parts


def _messages(payload: dict, model: str, words: list[str], prompt: int, stream: bool, seed: int) -> list[bytes]:
    ident = f"msg_sim{seed:x}"
    text = " ".join(words)
    if not stream:
        return [
            orjson.dumps(
                {
                    "id": ident,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": prompt, "output_tokens": len(words)},
                }
            )
        ]
    start = {
        "type": "message_start",
        "message": {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1},
        },
    }
    parts = [
        _sse(start, "message_start"),
        _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"),
    ]
    for i, word in enumerate(words):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": (" " if i else "") + word}}
        parts.append(_sse(delta, "content_block_delta"))
    parts.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    parts.append(
        _sse(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": len(words)}},
            "message_delta",
        )
    )
    parts.append(_sse({"type": "message_stop"}, "message_stop"))
    return parts


MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMENSIONS = 3072


def _embeddings_problem(payload: dict) -> tuple[str, str] | None:
    """OpenAI's own limits, so a request cannot make the simulator build gigabytes of vectors."""
    dims = payload.get("dimensions")
    if dims is not None and (
        not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= MAX_EMBEDDING_DIMENSIONS
    ):
        return "dimensions", f"dimensions must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}."
    inputs = payload.get("input")
    if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) and len(inputs) > MAX_EMBEDDING_INPUTS:
        return "input", f"input may hold at most {MAX_EMBEDDING_INPUTS} items."
    return None


def _embeddings(payload: dict, seed: int, prompt: int) -> bytes:
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
