"""A stream translated event by event: the provider's events are read by a decoder of its format, which tells
an encoder of the caller's format what happened (`Sink`), and the encoder writes the caller's events.

The meter of the provider's own format still reads every event first, so usage is what the provider
reported and the terminal event is the provider's; everything the encoder writes from the terminal
event on is held back by the proxy until the usage row is committed, as for a relayed stream.
"""

from __future__ import annotations

import logging

import orjson

from noor_daemon.gateway.provider_errors import ProviderError
from noor_daemon.gateway.translate.ir import Usage
from noor_daemon.gateway.wire.meter import StreamMeter

log = logging.getLogger(__name__)


class Sink:
    """What a decoder reports, in the order the caller must see it. Encoders implement every method.

    Blocks come one at a time: a text, a reasoning or a tool call opens a block (closing the one before
    when its kind changes), `end_block` closes it; `finish` closes the answer.
    """

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def take(self) -> bytes:
        """What was written since the last call."""
        if not self.out:
            return b""
        data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
        self.out.clear()
        return data

    def start(self, ident: str, model: str, created: int | None) -> None:
        raise NotImplementedError

    def text(self, delta: str) -> None:
        raise NotImplementedError

    def text_json(self, raw: bytes) -> None:
        """`text` with the piece as the provider wrote it: a JSON string, quotes and escapes included. An encoder
        that writes JSON can put it in as it is (no decoding and encoding again: most of a stream is text)."""
        self.text(orjson.loads(raw))

    def text_pieces(self, pieces: list[bytes]) -> None:
        """`text_json` for several pieces in a row (a run of text events that came together): an encoder whose
        events for them differ only in the piece writes them with one join."""
        for raw in pieces:
            self.text_json(raw)

    def refusal(self, delta: str) -> None:
        raise NotImplementedError

    def reasoning(self, delta: str) -> None:
        raise NotImplementedError

    def signature(self, value: str) -> None:
        raise NotImplementedError

    def redacted_reasoning(self, data: str) -> None:
        raise NotImplementedError

    def tool_call(self, call_id: str, name: str) -> None:
        raise NotImplementedError

    def tool_arguments(self, delta: str) -> None:
        raise NotImplementedError

    def end_block(self) -> None:
        raise NotImplementedError

    def finish(self, stop: str, stop_sequence: str | None, usage: Usage | None) -> None:
        raise NotImplementedError

    def fail(self, error: ProviderError) -> None:
        raise NotImplementedError


class Decoder:
    """Reads one provider format's events (whole SSE events, as bytes) into a `Sink`."""

    def __init__(self, sink: Sink, scrub) -> None:
        self.sink = sink
        self.scrub = scrub
        self.started = False
        self.finished = False

    def feed(self, event: bytes) -> None:
        raise NotImplementedError

    def piece(self, event: bytes) -> tuple[int, int] | None:
        """Where the JSON string is in `event` (its opening and closing quotes) if the event is a piece of text and
        nothing else (most of a stream; no usage, no end), found by byte searches; None: it needs `feed`."""
        return None

    def quick(self, events: list[bytes], at: int) -> int:
        """Handle `events[at]`, and the text events right after it written alike, without decoding them, if it is
        a piece of text (`piece`); how many were handled (0: it needs `feed`).

        Events alike are the same bytes around their pieces (the same id, model, index…), so a run of them is
        `prefix + piece + suffix` each: found by comparing their ends, the pieces cut out and checked as JSON
        strings all at once, and given to the sink together."""
        event = events[at]
        found = self.piece(event)
        if found is None:
            return 0
        start, end = found
        after = at + 1
        if after < len(events):
            prefix, suffix = event[:start], event[end + 1 :]
            while after < len(events) and events[after].startswith(prefix) and events[after].endswith(suffix):
                after += 1
            if after > at + 1:
                pieces = text_pieces(events[at:after], prefix, suffix)
                if pieces is not None:
                    self.sink.text_pieces(pieces)
                    return after - at
        self.sink.text_json(event[start : end + 1])
        return 1

    def close(self) -> None:
        """The provider's stream ended whole without its own terminal event: finish the answer anyway."""
        if self.started and not self.finished:
            self.finished = True
            self.sink.finish(*self.ending())

    def ending(self) -> tuple[str, str | None, Usage | None]:
        raise NotImplementedError


def string_end(data: bytes, start: int) -> int:
    """The index of the quote closing the JSON string whose opening quote is at `start`; -1 if it does not close.
    (Byte searches only: the decoders' fast path for text pieces.)"""
    end = data.find(b'"', start + 1)
    while end > 0 and data[end - 1] == 92:  # a backslash before it: escaped unless the backslashes pair up
        first = end - 1
        while data[first - 1] == 92:
            first -= 1
        if (end - first) % 2 == 0:
            break
        end = data.find(b'"', end + 1)
    return end


def text_pieces(events: list[bytes], prefix: bytes, suffix: bytes) -> list[bytes] | None:
    """The pieces of `events` (each `prefix + piece + suffix`, whole events as the splitter gives them), or None
    unless every piece is one JSON string. A piece holds no line break (JSON strings cannot), so each event's
    blank line is its suffix's: cut at `suffix + prefix`, a piece per event is exactly one event's."""
    block = b"".join(events)
    pieces = block[len(prefix) : len(block) - len(suffix)].split(suffix + prefix)
    if len(pieces) != len(events):
        return None
    joined = b",".join(pieces)
    if b"\n" in joined:
        return None
    try:
        values = orjson.loads(b"[" + joined + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(values) != len(pieces) or set(map(type, values)) != {str}:
        return None
    return pieces


class TranslatingMeter(StreamMeter):
    """`StreamMeter.relay` for a translated stream: the provider's meter reads, the encoder writes."""

    relayed = False

    def __init__(self, inner: StreamMeter, decoder: Decoder) -> None:
        super().__init__()
        self.inner = inner
        self.decoder = decoder
        self.encoder = decoder.sink

    def relay(self, events: list[bytes], held: list[bytes]) -> bytes:
        """Events written from the provider's terminal event on go to `held` (after the usage row is committed)."""
        ready = b""
        inner, decoder, encoder = self.inner, self.decoder, self.encoder
        quick = decoder.quick
        at, count = 0, len(events)
        while at < count:
            event = events[at]
            if not held:
                handled = quick(events, at)  # pieces of text: written as they came, counted as the meter would
                if handled:
                    inner.content_events += handled
                    at += handled
                    continue
            at += 1
            if self.error_status is not None:  # a stream we could not translate has ended
                break
            if not held and inner.quiet(event):  # no usage, error or end in it (a byte search): counted as relayed
                inner.count_quiet(event, 1)
                terminal = False
            else:
                _, terminal = inner.on_event(event)
                if terminal and not held:
                    ready = encoder.take()  # what came before the terminal event leaves now
            try:
                decoder.feed(event)
            except Exception as exc:  # a malformed or unexpected event: end the caller's stream with an error
                log.warning("a provider's stream could not be translated: %s", type(exc).__name__)
                if not held and not terminal:  # (at the terminal event, what came before it was taken already)
                    ready = encoder.take()
                encoder.fail(ProviderError(502, "The provider's stream could not be translated.", code="untranslatable_stream"))
                self.error_status = 502
                terminal = True
            if terminal or held:
                held.append(encoder.take())
        if not held:
            ready = encoder.take()
        self.usage = inner.usage
        self.content_events = inner.content_events
        if self.error_status is None:
            self.error_status = inner.error_status
        return ready

    def finish(self) -> bytes:
        if self.error_status is None:
            self.decoder.close()
        return self.encoder.take()
