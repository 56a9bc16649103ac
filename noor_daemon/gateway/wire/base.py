"""What the request path needs to know of one client-facing wire format, as one typed strategy.

Each endpoint under /v1 has a `Wire`: its family (which error shape and rate-limit headers its
callers expect), whether it streams, how its errors are written (as a response and inside a
stream), where its usage is in a whole answer, and how a request is prepared for an upstream
route (with the stream meter that will read the answer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import orjson
from aiohttp import web

from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.wire.meter import StreamMeter, Usage

if TYPE_CHECKING:
    from noor_daemon.gateway.translate import Translation

Family = Literal["openai", "anthropic"]


@dataclass(slots=True)
class Outgoing:
    """A request as it leaves for one upstream route."""

    payload: dict | None
    """The body to send: the very dict the client sent when nothing had to change (then its raw bytes go).
    None once `encode` has written it."""
    new_meter: Callable[[], StreamMeter] | None = None
    """Makes the meter that reads this request's stream; None for a wire without streams."""
    endpoint: str | None = None
    """The provider's endpoint when it differs from the caller's: a translated call."""
    translation: Translation | None = None
    """How the provider's answer becomes the caller's, for a translated call."""
    headers: dict[str, str] | None = None
    """The headers a translated call sends instead of the caller's (which belong to the caller's format)."""

    def encode(self, client_payload: dict, raw: bytes) -> bytes:
        """The bytes to send: `raw` when the payload is the client's very dict, else the payload written, which the
        call then lets go. (While the provider answers, every object a call holds is walked by each collection of
        the garbage collector, and a collection comes sooner the more objects calls hold.)"""
        payload, self.payload = self.payload, None
        return raw if payload is client_payload else orjson.dumps(payload)


class Wire(ABC):
    """One endpoint's format. Instances are stateless and shared by every call."""

    path: ClassVar[str]
    """Under /v1, e.g. `chat/completions`."""
    family: ClassVar[Family]

    streams: ClassVar[bool] = False
    """Whether the endpoint has a server-sent-events form (`"stream": true`)."""

    @abstractmethod
    def error_body(self, error: GatewayError) -> bytes: ...

    @abstractmethod
    def error_as(self, error: GatewayError, type_: str | None) -> bytes:
        """`error_body` with the error type a provider of this family named itself (None: the gateway's)."""

    def error_response(self, error: GatewayError) -> web.Response:
        return web.Response(status=error.status, body=self.error_body(error), content_type="application/json", headers=error.headers)

    @abstractmethod
    def stream_error(self, error: GatewayError) -> bytes:
        """An in-stream error event, so SDKs raise instead of seeing a silently short answer."""

    @abstractmethod
    def models_list(self, names: list[str]) -> bytes:
        """`GET /v1/models` in this family's shape."""

    @abstractmethod
    def usage_from_body(self, payload: dict) -> Usage | None:
        """The usage a whole (non-streamed) answer reports, or None when it reports none."""

    def prepare(self, payload: dict, upstream_model: str) -> Outgoing:
        """The request for an upstream that serves this model as `upstream_model`.

        The payload is only copied when something must change, so an unchanged request can be
        forwarded as the very bytes the client sent.
        """
        if payload.get("model") != upstream_model:
            payload = {**payload, "model": upstream_model}
        return Outgoing(payload)
