"""The request path's HTTP/1.1 client: keep-alive connections per upstream origin, answers parsed by httptools.

Every proxied call is one POST to an origin known from the config, answered whole (JSON) or as it
arrives (a stream). aiohttp's `ClientSession` serves that too, but builds a request object, a
response object, a timer context and its tracing, cookie, redirect and auth machinery per call,
and was the largest single cost of a call in the daemon's profile. This client keeps only what the
path needs: a pool of idle connections per origin (TLS or not), one write per request, and the
answer's bytes handed over as they are parsed (llhttp, through httptools). The health probes and
everything else keep using the app's `ClientSession`.

It never logs: a request carries the provider's key and the caller's prompt.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

from noor_daemon import __version__

KEEPALIVE_SECONDS = 60.0
"""An idle connection older than this is closed instead of reused (servers drop theirs too)."""
HIGH_WATER = 256 * 1024
"""Unread answer bytes above which the connection stops reading: a slow client slows the upstream."""


class UpstreamBroke(ConnectionError):
    """The connection failed or closed before the answer was whole."""


class UpstreamUnreachable(ConnectionError):
    """No connection could be made (refused, unresolvable, TLS refused, or not within the connect timeout)."""


class Origin:
    """One scheme://host:port and its idle keep-alive connections."""

    def __init__(self, scheme: str, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.host, self.port, self.ssl = host, port, ssl_context
        default = 443 if scheme == "https" else 80
        self.host_header = host if port == default else f"{host}:{port}"
        if ":" in host and not host.startswith("["):  # an IPv6 literal
            self.host_header = f"[{host}]" if port == default else f"[{host}]:{port}"
        self.idle: deque[Connection] = deque()

    async def acquire(self, connect_timeout: float) -> Connection:
        """The most recently used idle connection still open, or a new one."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and time.monotonic() - conn.idle_since < KEEPALIVE_SECONDS:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except TimeoutError:
            raise UpstreamUnreachable("connect timeout") from None
        except OSError as exc:  # refused, unresolvable, a certificate refused (ssl.SSLError is an OSError)
            raise UpstreamUnreachable(type(exc).__name__) from None
        return conn

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class Pool:
    """Every origin the upstreams use, shared by all of them (the app makes one and closes it)."""

    def __init__(self) -> None:
        self._origins: dict[tuple[str, str, int, int], Origin] = {}

    def origin(self, url: str, ssl_context: ssl.SSLContext | bool) -> tuple[Origin, str]:
        """The origin of `url` and its request target (path and query)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        context = None
        if scheme == "https":
            context = ssl_context if isinstance(ssl_context, ssl.SSLContext) else _default_context()
        key = (scheme, parts.hostname, port, id(context))
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = Origin(scheme, parts.hostname, port, context)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return origin, target

    def close(self) -> None:
        for origin in self._origins.values():
            origin.close()


_DEFAULT_CONTEXT: ssl.SSLContext | None = None


def _default_context() -> ssl.SSLContext:
    global _DEFAULT_CONTEXT
    if _DEFAULT_CONTEXT is None:
        _DEFAULT_CONTEXT = ssl.create_default_context()
    return _DEFAULT_CONTEXT


def request_head(target: str, origin: Origin, headers: list[tuple[str, str]], length: int) -> bytes:
    """A POST's head. Header values come from the config or from headers aiohttp's server already
    parsed (no CR or LF can be in them); any that would still break a line is dropped."""
    lines = [f"POST {target} HTTP/1.1", f"Host: {origin.host_header}", f"User-Agent: noorapi/{__version__}",
             "Accept-Encoding: identity", f"Content-Length: {length}"]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\0" in value:
            continue
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


async def post(origin: Origin, target: str, headers: list[tuple[str, str]], body: bytes, connect_timeout: float,
               idle_timeout: float) -> Answer:
    """Send the POST and return once the answer's status and headers are in (its body follows)."""
    conn = await origin.acquire(connect_timeout)
    answer = Answer(conn, idle_timeout)
    conn.answer = answer
    try:
        conn.transport.write(request_head(target, origin, headers, len(body)) + body)
        await answer.head
    except BaseException:
        conn.close()  # cancelled (a timeout) or broken mid-request: this connection cannot be reused
        raise
    return answer


class Connection(asyncio.Protocol):
    """One connection to an origin; its parser feeds the answer in progress."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None
        self.closed = False
        self.idle_since = 0.0
        self._header_name = b""

    # -- asyncio -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.answer is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.answer.fail(UpstreamBroke(f"unparsable answer ({type(exc).__name__})"))
            self.close()

    def eof_received(self) -> bool:
        if self.answer is not None:
            self.answer.on_eof()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None:
            self.answer.on_eof()
        try:
            self.origin.idle.remove(self)
        except ValueError:
            pass

    def pause_writing(self) -> None:  # a request body bigger than the socket buffer: the write is queued
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ---------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.answer is not None
        self.answer.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.answer is not None
        self.answer.on_head(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        assert self.answer is not None
        self.answer.on_body(body)

    def on_message_complete(self) -> None:
        assert self.answer is not None
        self.answer.on_complete(self.parser.should_keep_alive())

    # -- the pool --------------------------------------------------------------------

    def release(self, reusable: bool) -> None:
        self.answer = None
        if reusable and not self.closed:
            self.idle_since = time.monotonic()
            self.origin.idle.append(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Answer:
    """An upstream's answer: status and headers first, then the body's bytes as they are parsed."""

    __slots__ = ("conn", "idle_timeout", "head", "status", "raw_headers", "headers", "content_type", "_chunks",
                 "_buffered", "_paused", "_done", "_error", "_waiter", "_keep_alive", "_released", "_decoder")

    def __init__(self, conn: Connection, idle_timeout: float) -> None:
        self.conn = conn
        self.idle_timeout = idle_timeout
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers: dict[str, str] = {}
        """The answer's headers, names in lower case (a repeated header: its last value)."""
        self.content_type = ""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._done = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._keep_alive = False
        self._released = False
        self._decoder = None

    # -- fed by the connection -------------------------------------------------------

    def on_head(self, status: int) -> None:
        self.status = status
        headers = self.headers
        for name, value in self.raw_headers:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        self.content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error:
                self.fail(UpstreamBroke("undecodable compressed answer"))
                return
            if not data:
                return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused and self.conn.transport is not None:
            self._paused = True
            self.conn.transport.pause_reading()
        self._wake()

    def on_complete(self, keep_alive: bool) -> None:
        self._done = True
        self._keep_alive = keep_alive
        self._wake()

    def on_eof(self) -> None:
        if self._done:
            return
        if self.head.done() and not self._has_length():
            self._done = True  # an answer without a length ends with its connection
        else:
            self.fail(UpstreamBroke("the upstream closed the connection"))
        self._wake()

    def fail(self, error: Exception) -> None:
        if self._error is None and not self._done:
            self._error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved here: a cancelled caller must not leave it "never retrieved"
        self._wake()

    def _has_length(self) -> bool:
        return "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "").lower()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the proxy -----------------------------------------------------------

    async def _more(self) -> None:
        """Wait for body bytes, the end, or an error; TimeoutError after `idle_timeout` of silence."""
        if self._paused and self.conn.transport is not None:
            self._paused = False
            self.conn.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.idle_timeout):
                await self._waiter
        finally:
            self._waiter = None

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: whatever has been parsed since the last chunk, joined."""
        while True:
            if self._chunks:
                yield self._take()
            elif self._done:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._more()

    async def read(self) -> bytes:
        """The whole body."""
        while not self._done:
            if self._error is not None:
                raise self._error
            await self._more()
        return self._take() if self._chunks else b""

    def release(self) -> None:
        """Give the connection back when the answer was read whole and the server keeps it open; else close it."""
        if self._released:
            return
        self._released = True
        self.conn.release(self._done and self._keep_alive and self._error is None and not self._paused)
