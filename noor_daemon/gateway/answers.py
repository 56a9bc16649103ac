"""How the proxy's answers leave: a whole answer in one write serialized here, a stream's headers with its first events.

aiohttp's `Response` is general: a case-insensitive header dict built from ours, its defaults filled in
one by one, the head serialized and written through four coroutines. A proxied whole answer needs none
of that generality — a body of known length, a content type, a few plain headers — and every call pays
for it: `WholeAnswer` writes the same bytes for half the CPU (docs/performance.md, eighth round).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE


class EventStreamResponse(web.StreamResponse):
    """A stream whose status and headers leave with its first events, in one write instead of two.

    aiohttp sends a `StreamResponse`'s headers at `prepare()` unless the class says otherwise (its own
    `Response` does); the proxy prepares only when it has events to write, so nothing waits for them.
    """

    _send_headers_immediately = False


class WholeAnswer(web.StreamResponse):
    """A whole answer: status line, headers and body written together by one `write_eof`.

    What goes out is what `web.Response(status=, body=, content_type=, headers=)` sends (its Date, Server,
    Content-Length and Connection included); headers an `on_response_prepare` handler adds are sent too.
    """

    def __init__(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        super().__init__(status=status)
        self._whole = body
        self._content_type = content_type
        self._extra = headers
        self._head = b""

    async def prepare(self, request: web.BaseRequest):
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        self._req = request
        writer = self._payload_writer = request._payload_writer
        if self._keep_alive is None:
            self._keep_alive = request.keep_alive
        await request._prepare_hook(self)
        version = request.version
        # aiohttp's order: the answer's own headers, then the ones it adds.
        lines = [f"HTTP/{version[0]}.{version[1]} {self.status} {self.reason}\r\n"]
        for headers in (self._extra, self.headers):
            for name, value in headers.items():
                lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Type: {self._content_type}\r\nContent-Length: {len(self._whole)}\r\n"
                     f"Date: {rfc822_formatted_time()}\r\nServer: {SERVER_SOFTWARE}\r\n")
        if not self._keep_alive and version == (1, 1):
            lines.append("Connection: close\r\n")
        elif self._keep_alive and version == (1, 0):
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        # One CR and one LF a line (four in the piece of aiohttp's own), as its serializer insists: a value cannot
        # start another header.
        breaks = len(lines) + 3
        if head.count("\n") != breaks or head.count("\r") != breaks:
            raise ValueError("a newline or carriage return in a header of the answer")
        self._head = head.encode("utf-8")
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        writer = self._payload_writer
        assert writer is not None, "Response has not been started"
        await writer.write_eof(self._head + self._whole)
        self._eof_sent = True
        self._req = None
        self._body_length = writer.output_size
        self._payload_writer = None


def whole_answer(status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> web.StreamResponse:
    """The answer for a whole body: `WholeAnswer`, or aiohttp's own for a status that must not carry one."""
    if status in (204, 304) or status < 200:
        return web.Response(status=status, headers=headers)
    return WholeAnswer(status, body, content_type, headers)
