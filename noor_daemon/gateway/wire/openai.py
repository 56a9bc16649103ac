"""OpenAI's wire formats: Chat Completions, (legacy) Completions, Embeddings and the Responses API.

They share the OpenAI error body and `x-ratelimit-*` headers; each knows where its usage is,
in a whole answer and in its stream.
"""

from __future__ import annotations

import orjson

from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.wire.base import Outgoing, Wire
from noor_daemon.gateway.wire.meter import StreamMeter, Usage
from noor_daemon.gateway.wire.sse import event_field, event_json

_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "invalid_request_error",
    "not_found": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "requests",
    "insufficient_quota": "insufficient_quota",
    "upstream": "server_error",
    "timeout": "server_error",
    "unavailable": "server_error",
    "overloaded": "server_error",
}


def error_document(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_type(error: GatewayError) -> str:
    return _TYPES.get(error.kind, "server_error")


def error_body(error: GatewayError) -> bytes:
    return orjson.dumps(error_document(error.message, error_type(error), error.param, error.code))


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _cached(details: object, prompt: int) -> int:
    """`*_tokens_details.cached_tokens`: prompt tokens read from OpenAI's prompt cache (part of the prompt count)."""
    return min(prompt, _int(details.get("cached_tokens"))) if isinstance(details, dict) else 0


def chat_usage(usage: dict) -> Usage:
    """Chat Completions' usage: `prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`."""
    prompt = _int(usage.get("prompt_tokens"))
    return Usage(prompt, _int(usage.get("completion_tokens")), _cached(usage.get("prompt_tokens_details"), prompt))


def responses_usage(usage: dict) -> Usage:
    """The Responses API's usage: `input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`."""
    prompt = _int(usage.get("input_tokens"))
    return Usage(prompt, _int(usage.get("output_tokens")), _cached(usage.get("input_tokens_details"), prompt))


_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "requests": 429,
    "tokens": 429,
    "insufficient_quota": 429,
}


def error_status(error: object) -> int:
    """The HTTP status an error reported inside a stream stands for (500 unless it says otherwise)."""
    if not isinstance(error, dict):
        return 500
    for field in ("type", "code"):
        value = error.get(field)
        if isinstance(value, str) and value in _STATUS_OF_TYPE:
            return _STATUS_OF_TYPE[value]
    return 500


class ChatStreamMeter(StreamMeter):
    """`chat/completions` and `completions` streams.

    Usage arrives in a final chunk with empty `choices` when `stream_options.include_usage`
    is set. We always ask for it; if the client did not, that chunk is not forwarded.
    """

    # A superset of what `on_event` looks for: a false alarm only costs the per-event path.
    LOUD = (b"[DONE]", b'"error"', b'"usage":{', b'"usage": {')

    def __init__(self, strip_usage_chunk: bool) -> None:
        super().__init__()
        self.strip_usage_chunk = strip_usage_chunk

    def on_event(self, event: bytes) -> tuple[bool, bool]:
        if b"[DONE]" in event and (event.startswith(b"data: [DONE]") or event_field(event, b"data") == b"[DONE]"):
            return True, True
        if b'"error"' in event:
            chunk = event_json(event)
            if chunk is not None and "choices" not in chunk and isinstance(chunk.get("error"), dict):
                self.error_status = error_status(chunk["error"])  # the stream ends here, failed
                return True, True
        if b'"usage":{' in event or b'"usage": {' in event:
            chunk = event_json(event)
            usage = chunk.get("usage") if chunk else None
            if isinstance(usage, dict):
                self.usage = chat_usage(usage)
                if self.strip_usage_chunk and not chunk.get("choices"):
                    return False, False
        self.content_events += 1
        return True, False

_RESPONSE_TERMINALS = (b"response.completed", b"response.failed", b"response.incomplete")


class ResponsesStreamMeter(StreamMeter):
    """The Responses API stream: usage is inside the terminal `response.completed` event."""

    def on_event(self, event: bytes) -> tuple[bool, bool]:
        name = event_field(event, b"event")
        if name is None:
            data = event_json(event)
            name = data.get("type", "").encode() if data else None
        if name == b"error":
            self.error_status = error_status(event_json(event))
            return True, True
        if name in _RESPONSE_TERMINALS:
            data = event_json(event) or {}
            response = data.get("response") or {}
            if name == b"response.failed":
                self.error_status = error_status(response.get("error") if isinstance(response, dict) else None)
            usage = response.get("usage") if isinstance(response, dict) else None
            if isinstance(usage, dict):
                self.usage = responses_usage(usage)
            return True, True
        if name == b"response.output_text.delta":
            self.content_events += 1
        return True, False


def models_list(names: list[str]) -> bytes:
    return orjson.dumps(
        {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "noorapi"} for n in names]}
    )


# -- the strategies ----------------------------------------------------------------------------


class OpenAIWire(Wire):
    """OpenAI's error body (`{"error": {message, type, param, code}}`) for every OpenAI endpoint."""

    family = "openai"

    def error_body(self, error: GatewayError) -> bytes:
        return error_body(error)

    def error_as(self, error: GatewayError, type_: str | None) -> bytes:
        return orjson.dumps(error_document(error.message, type_ or error_type(error), error.param, error.code))

    def stream_error(self, error: GatewayError) -> bytes:
        return b"data: " + error_body(error) + b"\n\n"

    def models_list(self, names: list[str]) -> bytes:
        return models_list(names)

    def usage_from_body(self, payload: dict) -> Usage | None:
        usage = payload.get("usage")
        if not isinstance(usage, dict) or not any(isinstance(usage.get(f), int) for f in ("prompt_tokens", "completion_tokens")):
            return None  # absent, null or empty: the row will be estimated, not metered as zero
        return chat_usage(usage)


class ChatCompletionsWire(OpenAIWire):
    """`/v1/chat/completions`. A stream's usage comes in a last chunk only when `stream_options.include_usage`
    is set: we always ask for it, and hide that chunk from a client that did not."""

    path = "chat/completions"

    streams = True

    def prepare(self, payload: dict, upstream_model: str) -> Outgoing:
        outgoing = super().prepare(payload, upstream_model)
        if payload.get("stream") is not True:
            return outgoing
        options = payload.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return Outgoing(outgoing.payload, lambda: ChatStreamMeter(strip_usage_chunk=False))
        asked = {**outgoing.payload, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
        return Outgoing(asked, lambda: ChatStreamMeter(strip_usage_chunk=True))


class CompletionsWire(ChatCompletionsWire):
    """`/v1/completions` (legacy): the same usage and stream rules as chat."""

    path = "completions"


class EmbeddingsWire(OpenAIWire):
    path = "embeddings"


class ResponsesWire(OpenAIWire):
    """`/v1/responses`: usage as input/output tokens, inside the terminal `response.completed` event."""

    path = "responses"

    streams = True

    def usage_from_body(self, payload: dict) -> Usage | None:
        usage = payload.get("usage")
        if not isinstance(usage, dict) or not any(isinstance(usage.get(f), int) for f in ("input_tokens", "output_tokens")):
            return None
        return responses_usage(usage)

    def prepare(self, payload: dict, upstream_model: str) -> Outgoing:
        return Outgoing(super().prepare(payload, upstream_model).payload, ResponsesStreamMeter)
