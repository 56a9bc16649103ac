"""A stand-in provider that behaves as real networks do: it closes idle keep-alive connections on its own schedule.

Each connection, once idle, is closed after a random 0.5–2 s (`idle_range`). Its close takes
`fin_delay` to reach the client, as a FIN does over a real network: a request sent in that window
meets a closed socket (the server's kernel answers it with a reset), which is the race that turned
into 502s. It answers OpenAI chat completions, whole or streamed, with usage; it counts the sockets
open to it and their peak (the `max_connections` bound), and can be told to answer badly (`mode`):
an interim 1xx first, a body cut short (by length, chunked, or a reset when no length was sent),
or a corrupt gzip body.

Run alone for the benchmark: `python -m benchmarks.closing_upstream --port 9200`.
It is written on asyncio and httptools directly because no server package lets a test choose when
each connection closes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import socket
import struct

import httptools
import orjson

_CHAT = orjson.dumps({
    "id": "chatcmpl-closing", "object": "chat.completion", "created": 0, "model": "standin",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok ok ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
})
_CHUNK = b'data: {"id":"chatcmpl-closing","object":"chat.completion.chunk","created":0,"model":"standin","choices":[{"index":0,"delta":{"content":"ok "},"finish_reason":null}]}\n\n'
_USAGE = b'data: {"id":"chatcmpl-closing","object":"chat.completion.chunk","created":0,"model":"standin","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}\n\n'
_STREAM = _CHUNK * 3 + _USAGE + b"data: [DONE]\n\n"

MODES = ("ok", "interim", "cut_length", "cut_chunked", "reset_unknown_length", "corrupt_gzip", "truncated_gzip")


class ClosingUpstream:
    def __init__(self, idle_range: tuple[float, float] = (0.5, 2.0), fin_delay: float = 0.02, answer_delay: float = 0.0,
                 seed: int | None = None) -> None:
        self.idle_range = idle_range
        self.fin_delay = fin_delay
        self.answer_delay = answer_delay
        self.mode = "ok"
        self.random = random.Random(seed)
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        self.requests = 0
        self.idle_closes = 0
        self.paths: list[str] = []
        """`METHOD target` of every request served."""
        self._server: asyncio.Server | None = None
        self._live: set[_Connection] = set()
        self.port = 0
        self.scheme = "http"

    async def start(self, host: str = "127.0.0.1", port: int = 0, ssl_context=None) -> ClosingUpstream:
        """`ssl_context`: serve HTTPS (a server context with its certificate loaded)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=1024, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        self.scheme = "https" if ssl_context is not None else "http"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._live):
                conn.abort()
            await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1"


class _Connection(asyncio.Protocol):
    def __init__(self, server: ClosingUpstream) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.body = bytearray()
        self.url = ""
        self.idle_timer: asyncio.TimerHandle | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        server.connections += 1
        server.open += 1
        server.peak_open = max(server.peak_open, server.open)
        server._live.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open -= 1
        self.server._live.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- idle close --------------------------------------------------------------------

    def _arm(self) -> None:
        low, high = self.server.idle_range
        self.idle_timer = asyncio.get_running_loop().call_later(self.server.random.uniform(low, high), self._idle_close)

    def _idle_close(self) -> None:
        """The server gives up on the connection now; the client hears of it `fin_delay` later."""
        self.closing = True
        self.server.idle_closes += 1
        assert self.transport is not None
        self.transport.pause_reading()  # a request arriving now stays unread: closing then resets it
        asyncio.get_running_loop().call_later(self.server.fin_delay, self.transport.close)

    # -- httptools ---------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url = url.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.server.requests += 1
        self.server.paths.append(self.parser.get_method().decode() + " " + self.url)
        body, self.body = bytes(self.body), bytearray()
        stream = b'"stream":true' in body.replace(b" ", b"")
        if self.server.answer_delay:
            asyncio.get_running_loop().call_later(self.server.answer_delay, self._answer, stream)
        else:
            self._answer(stream)

    def _answer(self, stream: bool, interim_sent: bool = False) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        mode = self.server.mode
        if mode == "interim" and not interim_sent:  # the interim answers now, the final one a moment later
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
            asyncio.get_running_loop().call_later(0.02, self._answer, stream, True)
            return
        head = b""
        kind = b"text/event-stream" if stream else b"application/json"
        body = _STREAM if stream else _CHAT
        cut = len(_CHUNK) + 10 if stream else 40  # a stream is cut after its first event
        if mode == "cut_length":
            transport.write(head + b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (kind, len(body), body[:cut]))
            transport.close()
            return
        if mode == "cut_chunked":
            transport.write(head + b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n"
                            % (kind, cut, body[:cut]))
            transport.close()
            return
        if mode == "reset_unknown_length":
            transport.write(head + b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\n\r\n%s" % (kind, body[:cut]))
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            asyncio.get_running_loop().call_later(0.05, transport.abort)
            return
        encoding = b""
        if mode in ("corrupt_gzip", "truncated_gzip"):
            packed = gzip.compress(body)
            body = packed[:10] + b"\x00garbage, not deflate" + packed[30:] if mode == "corrupt_gzip" else packed[: len(packed) // 2]
            encoding = b"Content-Encoding: gzip\r\n"
        transport.write(head + b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (kind, encoding, len(body), body))
        self._arm()


async def _serve(port: int) -> None:
    server = await ClosingUpstream().start(port=port)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
