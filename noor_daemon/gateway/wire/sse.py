"""Server-sent events, split on event boundaries without decoding the payload."""

from __future__ import annotations

import orjson


class EventSplitter:
    """Feed raw chunks, get back whole events (each with its blank-line terminator).

    Events are forwarded to the client one by one as soon as they are complete, so the
    only thing ever held back is the unfinished tail of the current event.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._tail + chunk if self._tail else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._tail = events.pop()
        return [event + b"\n\n" for event in events if event]

    def rest(self) -> bytes:
        """Whatever the upstream sent after its last complete event (usually nothing)."""
        tail, self._tail = self._tail, b""
        return tail


def event_field(event: bytes, name: bytes) -> bytes | None:
    """The value of the `event:` or `data:` field of one event (data lines joined)."""
    prefix = name + b":"
    values = []
    for line in event.split(b"\n"):
        if line.startswith(prefix):
            value = line[len(prefix) :]
            values.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(values) if values else None


def event_data(event: bytes) -> bytes | None:
    """The `data:` field of one event: `event_field(event, b"data")`, quicker for the usual single data line."""
    start = event.find(b"data:")
    if start < 0 or (start and event[start - 1] != 10) or event.find(b"\ndata:", start + 5) >= 0:
        return event_field(event, b"data")  # several data lines, or "data:" not at a line's start
    end = event.find(b"\n", start)
    value = event[start + 5 : end if end >= 0 else None]
    return value[1:] if value[:1] == b" " else value


def event_json(event: bytes) -> dict | None:
    data = event_field(event, b"data")
    if not data or data == b"[DONE]":
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
