"""How the proxy's answers leave: their heads serialized here, a whole answer in one write, a stream's head with its first events.

aiohttp's `Response` is general: a case-insensitive header dict built from ours, its defaults filled in
one by one, the head serialized and written through four coroutines. A proxied whole answer needs none
of that generality — a body of known length, a content type, a few plain headers — and every call pays
for it: `WholeAnswer` and `EventStream` write the same bytes for less (docs/performance.md, eighth round).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE


def _head(
    response: web.StreamResponse, request: web.BaseRequest, own: Mapping[str, str], added: dict[str, str]
) -> bytes:
    """The status line and headers aiohttp would send, in its order: the answer's own headers, then the ones it adds
    (`added`, then Date, Server and what keep-alive needs)."""
    version = request.version
    lines = [f"HTTP/{version[0]}.{version[1]} {response.status} {response.reason}\r\n"]
    for headers in (own, response.headers, added):
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n")
    lines.append(f"Date: {rfc822_formatted_time()}\r\nServer: {SERVER_SOFTWARE}\r\n")
    if not response.keep_alive and version == (1, 1):
        lines.append("Connection: close\r\n")
    elif response.keep_alive and version == (1, 0):
        lines.append("Connection: keep-alive\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # One CR and one LF a line (two in the Date and Server piece), as aiohttp's serializer insists: a value cannot
    # start another header.
    breaks = len(lines) + 1
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise ValueError("a newline or carriage return in a header of the answer")
    return head.encode("utf-8")


class _OwnHead(web.StreamResponse):
    """An answer whose head `_head` serializes at `prepare`, and whose last write carries whatever of it is unsent."""

    def __init__(self, status: int, headers: Mapping[str, str]) -> None:
        super().__init__(status=status)
        self._extra = headers
        self._head = b""

    def _added_headers(self, request: web.BaseRequest) -> dict[str, str]:
        """The headers aiohttp would add before its Date; settles keep-alive."""
        raise NotImplementedError

    async def prepare(self, request: web.BaseRequest):
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        self._req = request
        writer = self._payload_writer = request._payload_writer
        if self._keep_alive is None:
            self._keep_alive = request.keep_alive
        added = self._added_headers(request)
        await request._prepare_hook(self)
        self._head = _head(self, request, self._extra, added)
        return writer

    async def _end(self, piece: bytes) -> None:
        writer = self._payload_writer
        assert writer is not None, "Response has not been started"
        piece, self._head = self._head + piece, b""
        await writer.write_eof(piece)
        self._eof_sent = True
        self._req = None
        self._body_length = writer.output_size
        self._payload_writer = None


class WholeAnswer(_OwnHead):
    """A whole answer: status line, headers and body written together by one `write_eof`.

    What goes out is what `web.Response(status=, body=, content_type=, headers=)` sends (its Date, Server,
    Content-Length and Connection included); headers an `on_response_prepare` handler adds are sent too.
    """

    def __init__(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        super().__init__(status, headers)
        self._whole = body
        self._content_type = content_type

    def _added_headers(self, request: web.BaseRequest) -> dict[str, str]:
        return {"Content-Type": self._content_type, "Content-Length": str(len(self._whole))}

    async def write_eof(self, data: bytes = b"") -> None:
        if not self._eof_sent:
            await self._end(self._whole)


class EventStream(_OwnHead):
    """A stream of server-sent events: its head leaves with its first events, each write one chunk of HTTP/1.1's
    chunked encoding framed here (to an HTTP/1.0 caller the bytes as they are, ended by the connection's close).
    The bytes are those of aiohttp's `StreamResponse` with the same headers; the proxy prepares it only when it has
    events to write, so nothing waits for them."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(200, headers)
        self._framed = True

    def _added_headers(self, request: web.BaseRequest) -> dict[str, str]:
        self._framed = request.version >= (1, 1)
        if not self._framed:
            self._keep_alive = False  # unframed, only the close can end the body
            return {}
        return {"Transfer-Encoding": "chunked"}

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        writer = self._payload_writer
        if writer is None:
            raise RuntimeError("Cannot call write() before prepare()")
        if not data:  # an empty chunk would end the body
            return
        piece = b"%x\r\n%b\r\n" % (len(data), data) if self._framed else bytes(data)
        if self._head:
            piece, self._head = self._head + piece, b""
        await writer.write(piece)

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        if self._framed:
            data = (b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data)) if data else b"0\r\n\r\n"
        await self._end(data)


def whole_answer(status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> web.StreamResponse:
    """The answer for a whole body: `WholeAnswer`, or aiohttp's own for a status that must not carry one."""
    if status in (204, 304) or status < 200:
        return web.Response(status=status, headers=headers)
    return WholeAnswer(status, body, content_type, headers)
