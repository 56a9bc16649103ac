"""The request path's HTTP/1.1 client: keep-alive connections per provider, answers parsed by httptools.

Every proxied call is one POST to an origin known from the config, answered whole (JSON) or as it
arrives (a stream). aiohttp's `ClientSession` serves that too, but builds a request object, a
response object, a timer context and its tracing, cookie, redirect and auth machinery per call,
and was the largest single cost of a call in the daemon's profile. This client keeps only what the
path needs: a bounded pool of connections per provider (TLS or not, direct or through a forward
proxy), one write per request, and the answer's bytes handed over as they are parsed (llhttp,
through httptools). The health probes and everything else keep using the app's `ClientSession`.

Real networks close connections on their own schedule, so a connection is checked before reuse
(closed, expired, or readable while idle: the server's FIN or stray bytes), and a reused one that
fails before a byte of the answer came back is retried once on a fresh connection: the server
closed it as the request went out, and nothing reached the caller.

It never logs: a request carries the provider's key and the caller's prompt.
"""

from __future__ import annotations

import asyncio
import re
import select
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from noor_daemon import __version__

KEEPALIVE_SECONDS = 4.0
"""An idle connection older than this is closed instead of reused (a provider's `keepalive_expiry`)."""
MAX_CONNECTIONS = 100
TRUSTED_IDLE_SECONDS = 0.02
"""A connection idle for less is reused without looking for a close first (a `select` a call, 2-3 % of the
daemon's CPU under load): servers close idle connections after seconds, and one that closed it at once
is caught by the retry of a reused connection that fails before any answer byte."""
HIGH_WATER = 256 * 1024
"""Unread answer bytes above which the connection stops reading: a slow client slows the upstream."""
_TUNNEL_HEAD_LIMIT = 16 * 1024
_KEEP_ALIVE_TIMEOUT = re.compile(r"timeout\s*=\s*(\d+)", re.IGNORECASE)


class UpstreamBroke(ConnectionError):
    """The connection failed or closed before the answer was whole."""


class UpstreamUnreachable(ConnectionError):
    """No connection could be made (refused, unresolvable, TLS refused, a proxy's tunnel refused, or
    not within the connect timeout)."""


class PoolExhausted(UpstreamUnreachable):
    """Every connection the provider may have stayed busy for the whole connect timeout."""


@dataclass(frozen=True)
class ProxyEndpoint:
    """A forward proxy: HTTPS is tunnelled through it (CONNECT), plain HTTP sent to it in absolute form."""

    host: str
    port: int
    authorization: str | None = None
    """The `Proxy-Authorization` value (`Basic …`), or None."""

    def __repr__(self) -> str:  # never a credential in a traceback or a debug print
        return f"ProxyEndpoint({self.host!r}, {self.port}, authorization={'set' if self.authorization else None})"


@dataclass
class OriginStats:
    """What `/metrics` shows of one provider's connections (counters only grow)."""

    waits: int = 0
    """Calls that found every connection busy and queued for one."""
    wait_seconds: float = 0.0
    wait_timeouts: int = 0
    retries: int = 0
    """Calls sent again on a fresh connection because a reused one had been closed under them."""
    stale_closed: int = 0
    """Idle connections found closed, expired or readable, and dropped instead of reused."""


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class Origin:
    """One provider's scheme://host:port (and the proxy it goes through): its connections, at most
    `max_connections`, and the calls queued for one."""

    def __init__(
        self, scheme: str, host: str, port: int, ssl_context: ssl.SSLContext | None, *, provider: str = "",
        proxy: ProxyEndpoint | None = None, max_connections: int = MAX_CONNECTIONS, keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.scheme, self.host, self.port, self.ssl = scheme, host, port, ssl_context
        self.provider = provider
        self.proxy = proxy
        self.max_connections = max_connections
        self.keepalive = keepalive
        default = 443 if scheme == "https" else 80
        self.host_header = _authority(host, port) if port != default else _authority(host, port).rsplit(":", 1)[0]
        self.absolute_prefix = f"{scheme}://{self.host_header}" if proxy is not None and ssl_context is None else ""
        """Plain HTTP through a proxy names the whole URL in the request line."""
        self.extra_head = ""
        if proxy is not None and ssl_context is None and proxy.authorization:
            self.extra_head = f"Proxy-Authorization: {proxy.authorization}\r\n"
        self.idle: deque[Connection] = deque()
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()
        self.open = 0
        """Connections open or being opened: never above `max_connections`."""
        self.stats = OriginStats()

    def configure(self, max_connections: int, keepalive: float) -> None:
        """A reloaded config's bounds (the connections stay)."""
        self.max_connections, self.keepalive = max_connections, keepalive
        self._offer_slots()

    # -- taking a connection -----------------------------------------------------------

    async def acquire(self, connect_timeout: float, *, fresh: bool = False) -> Connection:
        """An idle connection still good for reuse, else a new one; when `max_connections` are open,
        the first one given back (or a free slot), waited for within `connect_timeout`."""
        if not fresh:
            conn = self.reusable()
            if conn is not None:
                return conn
        queued = False
        try:
            async with asyncio.timeout(connect_timeout):
                if self.open < self.max_connections and not self.waiters:
                    self.open += 1
                else:
                    queued = True
                    handed = await self._wait()
                    queued = False
                    if handed is not None:
                        return handed
                return await self._connect()
        except TimeoutError:
            if queued:
                self.stats.wait_timeouts += 1
                raise PoolExhausted(
                    f"all {self.max_connections} connections (max_connections) stayed busy for the connect timeout"
                ) from None
            raise UpstreamUnreachable("connect timeout") from None

    def reusable(self) -> Connection | None:
        """An idle connection good for reuse, taken from the pool; None when there is none (no waiting)."""
        idle = self.idle
        if not idle:
            return None
        now = time.monotonic()
        while idle and now - idle[0].idle_since >= idle[0].keepalive:  # the oldest first: expired ones go
            self._drop(idle.popleft())
        while idle:
            conn = idle.pop()  # the most recently used: the likeliest to be open, the others may expire
            idle_for = now - conn.idle_since
            if not conn.closed and idle_for < conn.keepalive and (idle_for < TRUSTED_IDLE_SECONDS or not conn.readable()):
                return conn
            self._drop(conn)
        return None

    def _drop(self, conn: Connection) -> None:
        self.stats.stale_closed += 1
        conn.close()

    async def _wait(self) -> Connection | None:
        """Queue for a connection: one handed over as it is given back, or None with a slot to open one."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        self.stats.waits += 1
        try:
            while True:
                waiter: asyncio.Future[Connection | None] = loop.create_future()
                self.waiters.append(waiter)
                try:
                    handed = await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._pass_on(waiter.result())  # handed over as we gave up: to the next in line
                    else:
                        try:
                            self.waiters.remove(waiter)
                        except ValueError:
                            pass
                    raise
                if handed is None or not handed.closed:
                    return handed
                # closed between being given back and this task running: its slot is free again
                if self.open < self.max_connections:
                    self.open += 1
                    return None
        finally:
            self.stats.wait_seconds += time.monotonic() - started

    def _pass_on(self, handed: Connection | None) -> None:
        if handed is None:
            self.open -= 1
            self._offer_slots()
        else:
            self.give_back(handed)

    def give_back(self, conn: Connection) -> None:
        """A connection whose answer was read whole: to the first call waiting, else idle."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def forget(self, conn: Connection) -> None:
        """A connection has closed: its slot goes to the first call waiting."""
        self.open -= 1
        try:
            self.idle.remove(conn)
        except ValueError:
            pass
        self._offer_slots()

    def _offer_slots(self) -> None:
        waiters = self.waiters
        while waiters and self.open < self.max_connections:
            waiter = waiters.popleft()
            if not waiter.done():
                self.open += 1
                waiter.set_result(None)

    # -- opening one -----------------------------------------------------------------

    async def _connect(self) -> Connection:
        """A new connection in the slot already counted for it (freed if it cannot be made)."""
        conn = Connection(self)
        try:
            await self._open(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, UpstreamUnreachable):
                raise
            if isinstance(exc, OSError):  # refused, unresolvable, a certificate refused (ssl.SSLError is an OSError)
                raise UpstreamUnreachable(type(exc).__name__) from None
            raise
        return conn

    async def _open(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        proxy = self.proxy
        if proxy is None:
            await loop.create_connection(
                lambda: conn, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl is not None else None
            )
            return
        if self.ssl is None:  # plain HTTP: requests go to the proxy, which forwards them
            await loop.create_connection(lambda: conn, proxy.host, proxy.port)
            return
        transport, tunnel = await loop.create_connection(_TunnelRequest, proxy.host, proxy.port)
        try:
            target = _authority(self.host, self.port)
            lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", f"User-Agent: noorapi/{__version__}"]
            if proxy.authorization:
                lines.append(f"Proxy-Authorization: {proxy.authorization}")
            transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status = await tunnel.status
            if not 200 <= status < 300:
                raise UpstreamUnreachable(_refusal(status))
            # TLS with the provider itself, inside the tunnel: its certificate is verified end to end
            secure = await loop.start_tls(transport, tunnel, self.ssl, server_hostname=self.host)
        except BaseException:
            transport.close()
            raise
        if secure is None:  # the loop closed under us
            raise UpstreamUnreachable("the tunnel closed during the TLS handshake")
        secure.set_protocol(conn)
        conn.connection_made(secure)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def _refusal(status: int) -> str:
    if status == 407:
        return "the forward proxy refused CONNECT: 407 proxy authentication required (check the proxy's credentials)"
    return f"the forward proxy refused CONNECT ({status})"


class _TunnelRequest(asyncio.Protocol):
    """A CONNECT's answer: its status once the head is in."""

    def __init__(self) -> None:
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._head = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.status.done():
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > _TUNNEL_HEAD_LIMIT:
                self.status.set_exception(UpstreamUnreachable("the forward proxy's answer to CONNECT is not HTTP"))
            return
        line = bytes(self._head[: self._head.find(b"\r\n")])
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
            self.status.set_exception(UpstreamUnreachable("the forward proxy's answer to CONNECT is not HTTP"))
            return
        self.status.set_result(int(parts[1]))

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def _closed(self) -> None:
        if not self.status.done():
            self.status.set_exception(UpstreamUnreachable("the forward proxy closed the connection before answering CONNECT"))


class Pool:
    """Every provider's origins (the app makes one and closes it)."""

    def __init__(self) -> None:
        self._origins: dict[tuple, Origin] = {}

    def origin(
        self, url: str, ssl_context: ssl.SSLContext | bool, *, provider: str = "", proxy: ProxyEndpoint | None = None,
        max_connections: int = MAX_CONNECTIONS, keepalive: float = KEEPALIVE_SECONDS, trust: str | None = None,
    ) -> tuple[Origin, str]:
        """The origin of `url` for `provider` and its request target. `trust` names the CA bundle the
        context was made from, so a reload that makes a new context for the same file keeps the origin."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        context = None
        if scheme == "https":
            context = ssl_context if isinstance(ssl_context, ssl.SSLContext) else _default_context()
        trust_key = trust if trust is not None else id(context)
        key = (provider, scheme, parts.hostname, port, trust_key, proxy)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = Origin(
                scheme, parts.hostname, port, context, provider=provider, proxy=proxy, max_connections=max_connections,
                keepalive=keepalive,
            )
        else:
            origin.configure(max_connections, keepalive)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return origin, origin.absolute_prefix + target

    def stats(self) -> list[dict]:
        """Per provider: connections open and idle, calls waiting, and the counters of `OriginStats`."""
        rows: dict[str, dict] = {}
        for origin in self._origins.values():
            row = rows.setdefault(origin.provider, {
                "provider": origin.provider, "open": 0, "idle": 0, "waiting": 0, "waits": 0, "wait_seconds": 0.0,
                "wait_timeouts": 0, "retries": 0, "stale_closed": 0,
            })
            row["open"] += origin.open
            row["idle"] += len(origin.idle)
            row["waiting"] += sum(1 for w in origin.waiters if not w.done())
            for name, value in vars(origin.stats).items():
                row[name] += value
        return list(rows.values())

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
    lines.append(origin.extra_head)
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"


async def post(origin: Origin, target: str, headers: list[tuple[str, str]], body: bytes, connect_timeout: float,
               idle_timeout: float, head_timeout: float | None = None) -> Answer:
    """Send the POST and return once the answer's status and headers are in (its body follows);
    TimeoutError when they are not in within `head_timeout` seconds, connecting included.

    A reused connection that breaks before a byte of the answer arrived was closed by the server as
    the request went out (an idle timeout racing the reuse): the call goes once more on a fresh one.
    """
    data = request_head(target, origin, headers, len(body)) + body
    conn = origin.reusable()
    loop = conn.loop if conn is not None else asyncio.get_running_loop()
    expires = None if head_timeout is None else loop.time() + head_timeout
    if conn is None:
        async with asyncio.timeout_at(expires):  # connecting, or waiting for a slot: rare, asyncio's timer will do
            conn = await origin.acquire(connect_timeout)
    if conn.requests:
        try:
            return await _exchange(conn, data, idle_timeout, expires)
        except UpstreamBroke:
            if conn.received:
                raise
        origin.stats.retries += 1
        async with asyncio.timeout_at(expires):
            conn = await origin.acquire(connect_timeout, fresh=True)
    return await _exchange(conn, data, idle_timeout, expires)


async def _exchange(conn: Connection, data: bytes, idle_timeout: float, expires: float | None) -> Answer:
    answer = Answer(conn, idle_timeout)
    conn.answer = answer
    conn.requests += 1
    conn.received = False
    # A timer that fails the head's future, not `asyncio.timeout`: that one looks up the running loop and
    # task three times, each a getpid() system call in Python 3.11, on every call.
    timer = None if expires is None else conn.loop.call_at(expires, _silence, answer.head)
    try:
        conn.transport.write(data)  # type: ignore[union-attr]
        await answer.head
    except BaseException:
        conn.close()  # timed out, cancelled or broken mid-request: this connection cannot be reused
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return answer


class Connection(asyncio.Protocol):
    """One connection to an origin (it holds one of the origin's slots until it closes); its parser
    feeds the answer in progress."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None
        self.closed = False
        self.idle_since = 0.0
        self.keepalive = origin.keepalive
        self.requests = 0
        self.received = False
        """Whether any byte of the current answer has arrived."""
        self._fd = -1
        self._interim = False
        self._slot_held = True
        self.loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        """Kept, not looked up per call: `asyncio.get_running_loop()` is a getpid() system call in Python 3.11."""

    def readable(self) -> bool:
        """Bytes or an end waiting on an idle connection: the server closed it, or it is out of step."""
        if self._fd < 0:
            return False
        try:
            return bool(select.select([self._fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    # -- asyncio -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                self._fd = sock.fileno()
            except (OSError, ValueError):
                self._fd = -1

    def data_received(self, data: bytes) -> None:
        if self.answer is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.answer.fail(UpstreamBroke(f"unparsable answer ({type(exc).__name__})"))
            self.close()

    def eof_received(self) -> bool:
        if self.answer is not None:
            self.answer.on_eof(reset=False)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None:
            self.answer.on_eof(reset=exc is not None)
        self._free_slot()

    def pause_writing(self) -> None:  # a request body bigger than the socket buffer: the write is queued
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        answer = self.answer
        if answer is not None and answer.complete:  # a second answer to one request
            answer.out_of_step = True

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.answer is not None
        self.answer.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.answer is not None
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the final answer follows
            self.answer.raw_headers.clear()
            if status == 101:  # never asked for
                self.answer.fail(UpstreamBroke("the upstream switched protocols"))
            self._interim = True
            return
        self.answer.on_head(status)

    def on_body(self, body: bytes) -> None:
        assert self.answer is not None
        self.answer.on_body(body)

    def on_message_complete(self) -> None:
        assert self.answer is not None
        if self._interim:
            self._interim = False
            return
        self.answer.on_complete(self.parser.should_keep_alive())

    # -- the pool --------------------------------------------------------------------

    def release(self, reusable: bool) -> None:
        self.answer = None
        if reusable and not self.closed:
            self.origin.give_back(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()  # the slot is freed when the socket is (connection_lost)
        else:
            self._free_slot()

    def _free_slot(self) -> None:
        if self._slot_held:
            self._slot_held = False
            self.origin.forget(self)


def _silence(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Answer:
    """An upstream's answer: status and headers first, then the body's bytes as they are parsed."""

    __slots__ = ("conn", "idle_timeout", "head", "status", "raw_headers", "headers", "content_type", "_chunks",
                 "_buffered", "_paused", "_done", "_error", "_waiter", "_keep_alive", "_released", "_decoder",
                 "complete", "out_of_step")

    def __init__(self, conn: Connection, idle_timeout: float) -> None:
        self.conn = conn
        self.idle_timeout = idle_timeout
        self.head: asyncio.Future[None] = conn.loop.create_future()
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
        self.complete = False
        """The parser saw the answer's end (whether or not it was good)."""
        self.out_of_step = False

    # -- fed by the connection -------------------------------------------------------

    def on_head(self, status: int) -> None:
        self.status = status
        headers = self.headers
        for name, value in self.raw_headers:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        self.content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        encoding = headers.get("content-encoding")
        if encoding is not None:
            encoding = encoding.strip().lower()
            if encoding in ("gzip", "x-gzip"):
                self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif encoding == "deflate":
                self._decoder = zlib.decompressobj()
            elif encoding not in ("identity", ""):
                self.fail(UpstreamBroke("the answer is in a content-encoding the gateway cannot read"))
                return
        hint = headers.get("keep-alive")
        if hint is not None:  # `Keep-Alive: timeout=5`: expire before the server does
            found = _KEEP_ALIVE_TIMEOUT.search(hint)
            if found:
                self.conn.keepalive = min(self.conn.keepalive, max(int(found[1]) - 1.0, 0.0))
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, data: bytes) -> None:
        if self._error is not None:
            return
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error:
                self.fail(UpstreamBroke("the compressed answer is corrupt"))
                return
            if self._decoder.unused_data:
                self.fail(UpstreamBroke("the compressed answer is corrupt (bytes after its end)"))
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
        self.complete = True
        if self._error is None:
            self._keep_alive = keep_alive
            self._end()

    def on_eof(self, *, reset: bool) -> None:
        if self._done or self._error is not None:
            return
        if self.head.done() and not reset and not self._has_length():
            self._end()  # an answer without a length ends with its connection (a reset is no end)
        elif reset:
            self.fail(UpstreamBroke("the upstream reset the connection before the answer was whole"))
        else:
            self.fail(UpstreamBroke("the upstream closed the connection before the answer was whole"))

    def _end(self) -> None:
        decoder = self._decoder
        if decoder is not None:
            if not decoder.eof:
                self.fail(UpstreamBroke("the compressed answer is cut short"))
                return
            rest = decoder.flush()
            if rest:
                self._chunks.append(rest)
        self._done = True
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
        loop = self.conn.loop
        waiter = self._waiter = loop.create_future()
        # A timer that fails the waiter rather than `asyncio.timeout`, which cancels and uncancels the task:
        # a stream waits here a few times a call, and this costs about half as much.
        timer = loop.call_later(self.idle_timeout, _silence, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
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
        self.conn.release(
            self._done and self._keep_alive and self._error is None and not self._paused and not self.out_of_step
        )
