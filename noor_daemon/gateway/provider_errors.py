"""A provider's error as the caller sees it: the provider's type and message, redacted, in the caller's shape.

A provider's error body never reaches the caller as it came: a provider that echoes its own key
(or a proxy's page, or a debug dump) would leak it. Its type, message, code and param are read
out of whatever shape it has (OpenAI's, Anthropic's, `{"detail": …}`, `{"error": "…"}`, plain
text), key-shaped strings and the configured provider secrets are removed, and the error is
written again in the caller's format — for relayed and translated calls alike, as a response or
as the terminal event of a stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

import orjson

from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.wire import anthropic as anthropic_wire
from noor_daemon.gateway.wire import openai as openai_wire
from noor_daemon.gateway.wire.base import Family, Wire
from noor_daemon.gateway.wire.sse import event_field, event_json
from noor_daemon.redaction import REDACTED, redact

MAX_MESSAGE = 2000
"""A longer message is cut: an error message is a sentence, not a document."""

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
"""What an error type, code or param looks like; anything else is not relayed as one."""

_KIND_OF_TYPE = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limit",
    "rate_limit_exceeded": "rate_limit",
    "requests": "rate_limit",
    "tokens": "rate_limit",
    "insufficient_quota": "insufficient_quota",
    "overloaded_error": "overloaded",
    "api_error": "upstream",
    "server_error": "upstream",
}

_KIND_OF_STATUS = {
    400: "invalid_request", 401: "authentication", 403: "permission", 404: "not_found", 413: "request_too_large",
    422: "invalid_request", 429: "rate_limit", 503: "unavailable", 504: "timeout", 529: "overloaded",
}


@dataclass(slots=True)
class ProviderError:
    status: int
    message: str
    type: str | None = None
    """The provider's own error type, when it named one."""
    code: str | None = None
    param: str | None = None
    family: Family | None = None
    """The shape it came in, when it was OpenAI's or Anthropic's."""

    @property
    def kind(self) -> str:
        """The gateway's kind of this error (for a caller of the other family)."""
        found = _KIND_OF_TYPE.get(self.type or "")
        if found is not None:
            return found
        return _KIND_OF_STATUS.get(self.status, "upstream" if self.status >= 500 else "invalid_request")


class Scrubber:
    """Removes key-shaped strings and the literal values of the configured provider secrets from a text."""

    __slots__ = ("_literals",)

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        literals = set()
        for secret in secrets:
            if len(secret) >= 8:  # shorter ones would blank ordinary words
                literals.update({secret, quote(secret, safe="")})
        self._literals = sorted(literals, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, REDACTED)
        return redact(text)

    def message(self, value: object) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return None
        return self(value[:MAX_MESSAGE])

    def identifier(self, value: object) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
            return None
        cleaned = self(value)
        return cleaned if cleaned == value else None


def parse(status: int, data: bytes, content_type: str, scrub: Scrubber) -> ProviderError:
    """The error in an error answer's body, whatever its shape; only scrubbed fields are kept."""
    found: object = None
    if data[:1] in (b"{", b"[") or "json" in content_type:
        try:
            found = orjson.loads(data)
        except orjson.JSONDecodeError:
            found = None
    if isinstance(found, dict):
        error = found.get("error")
        if isinstance(error, dict):
            return from_object(status, error, scrub, "anthropic" if found.get("type") == "error" else "openai")
        message = scrub.message(error) or scrub.message(found.get("message")) or _detail(found.get("detail"), scrub)
        return ProviderError(status, message or _fallback(status), scrub.identifier(found.get("type")),
                             scrub.identifier(found.get("code")))
    if found is None and data and "html" not in content_type and data.lstrip()[:1] != b"<":
        text = data[:MAX_MESSAGE].decode("utf-8", errors="replace").strip()
        if text:
            return ProviderError(status, scrub(text))
    return ProviderError(status, _fallback(status, "an HTML page" if data else "no body"))


def from_object(status: int, error: dict, scrub: Scrubber, family: Family | None = None) -> ProviderError:
    """An error object read out of a provider's stream event, scrubbed."""
    return ProviderError(
        status, scrub.message(error.get("message")) or _fallback(status), scrub.identifier(error.get("type")),
        scrub.identifier(error.get("code")), scrub.identifier(error.get("param")), family,
    )


def _detail(detail: object, scrub: Scrubber) -> str | None:
    """FastAPI's `{"detail": "…"}` or `{"detail": [{"msg": …}, …]}` (vLLM and other Python servers)."""
    if isinstance(detail, list):
        detail = "; ".join(str(d.get("msg")) for d in detail if isinstance(d, dict) and d.get("msg"))
    return scrub.message(detail)


def _fallback(status: int, what: str = "an error") -> str:
    return f"The provider answered {status} with {what}."


def as_gateway_error(error: ProviderError, provider: str | None = None) -> GatewayError:
    return GatewayError(error.status, error.kind, error.message, code=error.code, param=error.param)


def type_in(error: ProviderError, family: Family) -> str:
    """The error's type as a caller of `family` expects it: the provider's own when the families match."""
    if error.family == family and error.type:
        return error.type
    mapped = as_gateway_error(error)
    return openai_wire.error_type(mapped) if family == "openai" else anthropic_wire.error_type(mapped)


def relay_body(error: ProviderError, wire: Wire) -> bytes:
    """The caller's error body: the provider's own type when the caller speaks the provider's family."""
    same = error.family == wire.family and error.type is not None
    return wire.error_as(as_gateway_error(error), error.type if same else None)


def relay_answer(status: int, data: bytes, content_type: str, wire: Wire, scrub: Scrubber) -> bytes:
    return relay_body(parse(status, data, content_type, scrub), wire)


def sanitize_stream_error(event: bytes, scrub: Scrubber) -> bytes:
    """A provider's in-stream error event with only its scrubbed type, code, param and message; same event name.

    Covers Anthropic's `event: error`, a Chat Completions `data: {"error": …}` chunk, and the Responses
    API's `error` and `response.failed` events. An event it cannot read is replaced by a generic error.
    """
    name = event_field(event, b"event")
    data = event_json(event)
    if data is None:
        return _event(name, {"error": {"message": _fallback(500), "type": "server_error", "param": None, "code": None}})
    if isinstance(data.get("error"), dict):
        inner = data["error"]
        cleaned = {"type": scrub.identifier(inner.get("type")) or "api_error", "message": scrub.message(inner.get("message")) or _fallback(500)}
        if data.get("type") != "error":  # OpenAI's shape carries code and param too
            cleaned = {"message": cleaned["message"], "type": cleaned["type"], "param": scrub.identifier(inner.get("param")),
                       "code": scrub.identifier(inner.get("code"))}
        return _event(name, {**{k: v for k, v in data.items() if k in ("type", "sequence_number")}, "error": cleaned})
    if data.get("type") == "error":  # the Responses API's error event: the fields at the top
        return _event(name, {
            "type": "error", "code": scrub.identifier(data.get("code")), "message": scrub.message(data.get("message")) or _fallback(500),
            "param": scrub.identifier(data.get("param")),
            **({"sequence_number": data["sequence_number"]} if isinstance(data.get("sequence_number"), int) else {}),
        })
    response = data.get("response")
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        inner = response["error"]
        response = {**response, "error": {"code": scrub.identifier(inner.get("code")) or "server_error",
                                           "message": scrub.message(inner.get("message")) or _fallback(500)}}
        return _event(name, {**data, "response": response})
    return event


def _event(name: bytes | None, data: dict) -> bytes:
    head = b"event: " + name + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
