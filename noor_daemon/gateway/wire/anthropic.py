"""Anthropic's wire format: Messages and token counting, with Anthropic's error body and headers."""

from __future__ import annotations

import orjson

from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.wire.base import Outgoing, Wire
from noor_daemon.gateway.wire.meter import StreamMeter, Usage
from noor_daemon.gateway.wire.sse import event_field, event_json

_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "insufficient_quota": "rate_limit_error",
    "upstream": "api_error",
    "timeout": "api_error",
    "unavailable": "api_error",
    "overloaded": "overloaded_error",
}

DEFAULT_VERSION = "2023-06-01"

# An in-stream `error` event names its type; this is the HTTP status the same error has as a response.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def error_document(message: str, type_: str) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


def error_type(error: GatewayError) -> str:
    return _TYPES.get(error.kind, "api_error")


def error_body(error: GatewayError) -> bytes:
    return orjson.dumps(error_document(error.message, error_type(error)))


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _input_tokens(usage: dict) -> int:
    """Input as billed: plain input plus prompt-cache reads and writes."""
    return (
        _int(usage.get("input_tokens"))
        + _int(usage.get("cache_creation_input_tokens"))
        + _int(usage.get("cache_read_input_tokens"))
    )


def messages_usage(usage: dict) -> Usage:
    """Anthropic's usage: input counted as billed (plain, cache reads and cache writes), of which the cached."""
    return Usage(
        _input_tokens(usage), _int(usage.get("output_tokens")),
        cached_tokens=_int(usage.get("cache_read_input_tokens")), cache_write_tokens=_int(usage.get("cache_creation_input_tokens")),
    )


def _reports(usage: object, *fields: str) -> bool:
    """True when `usage` is an object holding at least one of `fields` as a number.

    An empty or null usage (some compatible servers send `"usage": {}`) is no usage at all,
    so the row is estimated rather than metered as zero tokens.
    """
    return isinstance(usage, dict) and any(isinstance(usage.get(f), int) for f in fields)


class MessagesStreamMeter(StreamMeter):
    """Input tokens come in `message_start`, the running output count in `message_delta`."""

    # No message_start/delta/stop, no error; and every event line written `event: name`, so the
    # content deltas can be counted by their line (JSON data cannot hold a raw newline).
    LOUD = (b"message_", b"error", b"event:c")

    def on_event(self, event: bytes) -> tuple[bool, bool]:
        name = event_field(event, b"event")
        if name == b"content_block_delta":
            self.content_events += 1
        elif name == b"message_start":
            data = event_json(event) or {}
            message = data.get("message") or {}
            usage = message.get("usage") if isinstance(message, dict) else None
            if _reports(usage, "input_tokens"):
                self.usage = messages_usage(usage)
        elif name == b"message_delta":
            data = event_json(event) or {}
            usage = data.get("usage")
            if _reports(usage, "output_tokens"):
                current = self.usage or Usage()
                if "input_tokens" in usage and usage["input_tokens"] is not None:
                    whole = messages_usage(usage)
                    current.prompt_tokens = whole.prompt_tokens
                    current.cached_tokens, current.cache_write_tokens = whole.cached_tokens, whole.cache_write_tokens
                current.completion_tokens = _int(usage.get("output_tokens"))
                self.usage = current
        elif name == b"message_stop":
            return True, True
        elif name == b"error":  # e.g. overloaded mid-stream: the stream ends here, failed
            data = event_json(event) or {}
            error = data.get("error")
            kind = error.get("type") if isinstance(error, dict) else None
            self.error_status = _STATUS_OF_TYPE.get(kind, 500) if isinstance(kind, str) else 500
            return True, True
        return True, False

    def count_quiet(self, events: bytes, count: int) -> None:
        self.content_events += events.count(b"event: content_block_delta\n")


def models_list(names: list[str]) -> bytes:
    data = [
        {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"} for n in names
    ]
    return orjson.dumps(
        {"data": data, "has_more": False, "first_id": names[0] if names else None, "last_id": names[-1] if names else None}
    )


# -- the strategies ----------------------------------------------------------------------------


class AnthropicWire(Wire):
    """Anthropic's error body (`{"type": "error", "error": {type, message}}`) and `anthropic-ratelimit-*` headers."""

    family = "anthropic"

    def error_body(self, error: GatewayError) -> bytes:
        return error_body(error)

    def error_as(self, error: GatewayError, type_: str | None) -> bytes:
        return orjson.dumps(error_document(error.message, type_ or error_type(error)))

    def stream_error(self, error: GatewayError) -> bytes:
        return b"event: error\ndata: " + error_body(error) + b"\n\n"

    def models_list(self, names: list[str]) -> bytes:
        return models_list(names)


class MessagesWire(AnthropicWire):
    """`/v1/messages`: input tokens in `message_start`, the output count in `message_delta`."""

    path = "messages"

    streams = True

    def usage_from_body(self, payload: dict) -> Usage | None:
        usage = payload.get("usage")
        if not _reports(usage, "input_tokens", "output_tokens"):
            return None
        return messages_usage(usage)

    def prepare(self, payload: dict, upstream_model: str) -> Outgoing:
        return Outgoing(super().prepare(payload, upstream_model).payload, MessagesStreamMeter)


class CountTokensWire(AnthropicWire):
    """`/v1/messages/count_tokens`: counting is free; it consumes nothing."""

    path = "messages/count_tokens"

    def usage_from_body(self, payload: dict) -> Usage | None:
        return Usage(0, 0)
