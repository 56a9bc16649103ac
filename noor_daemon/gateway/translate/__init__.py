"""Any client to any model: translation between Chat Completions, Responses and Anthropic Messages.

A call whose route's provider serves its format is relayed untouched (the proxy never comes here).
Otherwise `translate` reads the request into the pivot (`ir.py`) with the caller's format module and
writes it with the provider's; the answer comes back the same way — a whole body through
`Translation.answer`, a stream event by event through the `TranslatingMeter` it makes. Usage is read
from the provider's own answer by the provider format's meter: the tokens it reported, once.

    chat.py, chat_stream.py             OpenAI Chat Completions
    responses.py, responses_stream.py   OpenAI Responses
    messages.py, messages_stream.py     Anthropic Messages
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.provider_errors import Scrubber
from noor_daemon.gateway.translate import chat, chat_stream, ir, messages, messages_stream, responses, responses_stream
from noor_daemon.gateway.translate.stream import Decoder, Sink, TranslatingMeter
from noor_daemon.gateway.wire import WIRES, Outgoing
from noor_daemon.gateway.wire.anthropic import MessagesStreamMeter
from noor_daemon.gateway.wire.meter import StreamMeter, Usage, estimate_tokens
from noor_daemon.gateway.wire.openai import ChatStreamMeter, ResponsesStreamMeter


@dataclass(frozen=True)
class Codec:
    """One format's reader and writer of requests and answers, and its stream's decoder and meter."""

    title: str
    read_request: Callable[[dict, str], ir.Request]
    write_request: Callable[[ir.Request, ir.Target], dict | tuple[dict, dict[str, str]]]
    read_answer: Callable[[dict], ir.Answer]
    write_answer: Callable[[ir.Answer, ir.Request | None, int], bytes]
    decoder: type[Decoder]
    meter: Callable[[], StreamMeter]
    echoes_request: bool = False
    """Its answers repeat the request (the Responses API's do): its writers need the pivot request."""


CODECS: dict[str, Codec] = {
    "chat/completions": Codec(chat.TITLE, chat.read_request, chat.write_request, chat.read_answer, chat.write_answer,
                              chat_stream.ChatDecoder, lambda: ChatStreamMeter(strip_usage_chunk=False)),
    "responses": Codec(responses.TITLE, responses.read_request, responses.write_request, responses.read_answer,
                       responses.write_answer, responses_stream.ResponsesDecoder, ResponsesStreamMeter, echoes_request=True),
    "messages": Codec(messages.TITLE, messages.read_request, messages.write_request, messages.read_answer,
                      messages.write_answer, messages_stream.MessagesDecoder, MessagesStreamMeter),
}

_PREFERRED = {
    "anthropic": ("messages", "chat/completions", "responses"),
    "openai": ("chat/completions", "responses", "messages"),
}


def target_format(source: str, served: set[str], protocol: str) -> str | None:
    """Which format to translate a `source` call into for a provider serving `served`: its native one first."""
    for candidate in _PREFERRED["anthropic" if protocol == "anthropic" else "openai"]:
        if candidate != source and candidate in served:
            return candidate
    return None


class Translation:
    """One translated call: how the provider's answer becomes the caller's (with the pivot request, for a caller whose
    answers repeat it)."""

    __slots__ = ("client_payload", "input_estimate", "now", "request", "scrub", "source", "target")

    def __init__(self, source: str, target: str, request: ir.Request, client_payload: dict, now: int, input_estimate: int,
                 scrub: Scrubber) -> None:
        self.source, self.target = source, target
        # Kept only for a caller whose answers repeat it: a call holds no more objects than it needs while the provider
        # answers (the garbage collector walks them all, and collects sooner the more there are).
        self.request = request if CODECS[source].echoes_request else None
        self.client_payload, self.now, self.input_estimate, self.scrub = client_payload, now, input_estimate, scrub

    def answer(self, data: bytes) -> tuple[bytes, Usage | None]:
        """The caller's body for the provider's whole answer, and the usage the provider reported in it.
        Raises GatewayError (502) for an answer that cannot be read or written."""
        try:
            body = orjson.loads(data)
            if not isinstance(body, dict):
                raise TypeError("not an object")
            usage = WIRES[self.target].usage_from_body(body)
            answer = CODECS[self.target].read_answer(body)
            return CODECS[self.source].write_answer(answer, self.request, self.now), usage
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise GatewayError(502, "upstream", f"The provider's answer could not be translated ({type(exc).__name__}).",
                               code="untranslatable_answer") from None

    def encoder(self) -> Sink:
        if self.source == "messages":
            return messages_stream.MessagesEncoder(self.input_estimate)
        if self.source == "responses":
            return responses_stream.ResponsesEncoder(self.request, self.now)
        options = self.client_payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return chat_stream.ChatEncoder(include_usage, self.now)

    def new_meter(self) -> TranslatingMeter:
        codec = CODECS[self.target]
        return TranslatingMeter(codec.meter(), codec.decoder(self.encoder(), self.scrub))


def translate(
    source: str, payload: dict, target: str, model: str, options: ir.Target, *, raw_size: int, now: int, scrub: Scrubber
) -> Outgoing:
    """The request for a provider that serves `target` (not `source`), as `model`. Raises GatewayError (400) for a
    field the target cannot express, or a malformed request."""
    request = CODECS[source].read_request(payload, CODECS[target].title)
    request.model = model
    written = CODECS[target].write_request(request, options)
    headers: dict[str, str] = {}
    if isinstance(written, tuple):
        written, headers = written
    translation = Translation(source, target, request, payload, now, estimate_tokens(raw_size), scrub)
    return Outgoing(written, translation.new_meter if request.stream else None, endpoint=target, translation=translation,
                    headers=headers)


__all__ = ["CODECS", "Translation", "target_format", "translate"]
