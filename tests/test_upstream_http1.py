"""The request path's HTTP/1.1 client (`gateway/http1.py`) against raw servers on loopback that send exact bytes:
keep-alive and its races, interim answers, bodies cut short, compression, and the bound per provider."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from noor_daemon.gateway import http1

pytestmark = pytest.mark.engine_independent

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """A loopback server whose handler writes the answer's bytes itself; it records every request head."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(length))
                await self.handler(reader, writer, len(self.heads))
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def json_answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def call(pool: http1.Pool, url: str, body: bytes = b'{"x": 1}', headers=(), idle: float = 5.0) -> http1.Answer:
    origin, target = pool.origin(url, True)
    return await http1.post(origin, target, list(headers), body, connect_timeout=2.0, idle_timeout=idle)


async def test_calls_reuse_one_keep_alive_connection_and_send_a_proper_head():
    async def handler(reader, writer, n):
        writer.write(json_answer(b'{"n": %d}' % n))

    pool = http1.Pool()
    async with RawServer(handler) as server:
        for n in range(1, 6):
            answer = await call(pool, server.url, headers=[("Authorization", "Bearer sk-up"), ("anthropic-version", "2023")])
            assert (answer.status, answer.content_type) == (200, "application/json")
            assert await answer.read() == b'{"n": %d}' % n
            answer.release()
        assert server.connections == 1
        head = server.heads[0].decode()
        assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
        port = server.url.split(":")[2].split("/")[0]
        for line in (f"Host: 127.0.0.1:{port}", "Content-Length: 8", "Authorization: Bearer sk-up", "anthropic-version: 2023"):
            assert line in head.split("\r\n")
        assert server.bodies[0] == b'{"x": 1}'
    pool.close()


async def test_a_header_value_that_would_break_the_head_is_dropped():
    async def handler(reader, writer, n):
        writer.write(json_answer(b"{}"))

    pool = http1.Pool()
    async with RawServer(handler) as server:
        answer = await call(pool, server.url, headers=[("x-a", "ok"), ("x-b", "bad\r\nInjected: yes")])
        await answer.read()
        answer.release()
        assert "x-a: ok" in server.heads[0].decode() and b"Injected" not in server.heads[0]
    pool.close()


async def test_connection_close_and_a_server_that_drops_idle_connections_cost_a_new_connection_not_an_error():
    async def handler(reader, writer, n):
        if n == 1:
            writer.write(json_answer(b'{"a": 1}', b"Connection: close\r\n"))
            await writer.drain()
            writer.close()
        else:
            writer.write(json_answer(b'{"b": 2}'))
            await writer.drain()
            writer.close()  # the server drops it right after answering (an idle timeout)

    pool = http1.Pool()
    async with RawServer(handler) as server:
        for expected in (b'{"a": 1}', b'{"b": 2}'):
            answer = await call(pool, server.url)
            assert await answer.read() == expected
            answer.release()
            await asyncio.sleep(0.05)  # the close reaches us: the pool forgets that connection
        answer = await call(pool, server.url)
        assert await answer.read() == b'{"b": 2}'
        answer.release()
        assert server.connections == 3
    pool.close()


async def test_chunked_streams_arrive_as_they_are_sent_and_the_connection_is_reused():
    release = asyncio.Event()

    async def handler(reader, writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await release.wait()
        writer.write(b"0\r\n\r\n")

    pool = http1.Pool()
    async with RawServer(handler) as server:
        answer = await call(pool, server.url)
        assert answer.content_type == "text/event-stream"
        chunks = answer.chunks()
        assert await anext(chunks) == b"data: 1\n\n"  # before the server has sent the rest
        release.set()
        assert b"".join([c async for c in chunks]) == b"data: 2\n\n"
        answer.release()
        second = await call(pool, server.url)
        assert b"".join([c async for c in second.chunks()]) == b"data: 1\n\ndata: 2\n\n"
        second.release()
        assert server.connections == 1
    pool.close()


async def read_one_answer(raw: bytes, *, close: bool) -> tuple[bytes | Exception, int]:
    """Serve `raw` as the answer to one call (then close the connection when `close`) and read it whole:
    (the body or the error reading it, the idle connections the pool kept)."""
    async def handler(reader, writer, n):
        writer.write(raw)
        await writer.drain()
        if close:
            writer.close()

    pool = http1.Pool()
    async with RawServer(handler) as server:
        answer = await call(pool, server.url)
        try:
            result: bytes | Exception = await answer.read()
        except Exception as exc:
            result = exc
        answer.release()
        kept = len(pool.origin(server.url, True)[0].idle)
    pool.close()
    return result, kept


async def test_an_answer_without_a_length_ends_with_its_connection():
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"whole\": true}"
    assert await read_one_answer(raw, close=True) == (b'{"whole": true}', 0)


async def test_a_gzip_answer_is_decoded_and_its_connection_kept():
    raw = json_answer(gzip.compress(b'{"usage": {"prompt_tokens": 3}}'), b"Content-Encoding: gzip\r\n")
    assert await read_one_answer(raw, close=False) == (b'{"usage": {"prompt_tokens": 3}}', 1)


async def test_an_answer_cut_off_mid_body_is_an_error_and_the_connection_is_not_reused():
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial"
    error, kept = await read_one_answer(raw, close=True)
    assert isinstance(error, http1.UpstreamBroke) and kept == 0


async def test_a_silent_upstream_times_out_and_its_connection_is_closed():
    async def handler(reader, writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        await asyncio.sleep(10)

    pool = http1.Pool()
    async with RawServer(handler) as server:
        answer = await call(pool, server.url, idle=0.2)
        with pytest.raises(TimeoutError):
            async for _ in answer.chunks():
                pass
        answer.release()
        origin, _ = pool.origin(server.url, True)
        assert not origin.idle
    pool.close()


async def test_a_cancelled_call_closes_its_connection():
    async def handler(reader, writer, n):
        await asyncio.sleep(10)  # never answers

    pool = http1.Pool()
    async with RawServer(handler) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await call(pool, server.url)
        origin, _ = pool.origin(server.url, True)
        assert not origin.idle
    pool.close()


async def test_a_head_that_does_not_come_within_head_timeout_is_a_timeout_on_a_fresh_or_a_reused_connection():
    async def handler(reader, writer, n):
        if n == 1:
            writer.write(json_answer(b"{}"))
        else:
            await asyncio.sleep(10)  # the second call's answer never starts

    pool = http1.Pool()
    async with RawServer(handler) as server:
        origin, target = pool.origin(server.url, True)
        answer = await http1.post(origin, target, [], b"{}", 2.0, 5.0, 0.5)
        assert (answer.status, await answer.read()) == (200, b"{}")
        answer.release()
        assert len(origin.idle) == 1
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # on the reused connection: the timer on the head's future
            await http1.post(origin, target, [], b"{}", 2.0, 5.0, 0.3)
        assert 0.25 < time.monotonic() - started < 2
        await asyncio.sleep(0.05)
        assert not origin.idle and origin.open == 0  # closed, its slot free
        with pytest.raises(TimeoutError):  # on a fresh one
            await http1.post(origin, target, [], b"{}", 2.0, 5.0, 0.2)
        assert server.connections == 2
    pool.close()


async def test_a_refused_connection_is_unreachable():
    async def handler(reader, writer, n):
        pass

    async with RawServer(handler) as server:
        url = server.url
    pool = http1.Pool()
    with pytest.raises(http1.UpstreamUnreachable):
        await call(pool, url)


async def test_a_big_stream_read_slowly_pauses_the_upstream_and_arrives_whole():
    part = b"data: " + b"x" * 8000 + b"\n\n"
    count = 200  # ~1.6 MB, several times the high-water mark

    async def handler(reader, writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % (len(part) * count))
        for _ in range(count):
            writer.write(part)
            await writer.drain()

    pool = http1.Pool()
    async with RawServer(handler) as server:
        answer = await call(pool, server.url)
        received = bytearray()
        paused_seen = False
        async for chunk in answer.chunks():
            received += chunk
            paused_seen = paused_seen or answer._paused
            await asyncio.sleep(0.005)  # a slow client
        assert bytes(received) == part * count
        assert paused_seen  # reading stopped while the unread bytes were above the mark
        answer.release()
        again = await call(pool, server.url)  # and the connection is whole for the next call
        assert len(await again.read()) == len(part) * count
        again.release()
        assert server.connections == 1
    pool.close()


async def test_an_upstream_that_does_not_speak_http_is_a_broken_call_not_a_crash():
    async def handler(reader, writer, n):
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    pool = http1.Pool()
    async with RawServer(handler) as server:
        with pytest.raises(http1.UpstreamBroke):
            await call(pool, server.url)
        assert not pool.origin(server.url, True)[0].idle
    pool.close()


# -- informational answers, bodies cut short, corrupt compression ---------------------------------


async def test_interim_1xx_answers_are_skipped_and_the_final_answer_is_read_whole():
    raw = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
           + json_answer(b'{"final": true}', b"x-final: 1\r\n"))

    async def handler(reader, writer, n):
        writer.write(raw)

    pool = http1.Pool()
    async with RawServer(handler) as server:
        for _ in range(2):  # and the connection stays in step for the next call
            answer = await call(pool, server.url)
            assert answer.status == 200 and answer.headers.get("x-final") == "1" and "link" not in answer.headers
            assert await answer.read() == b'{"final": true}'
            answer.release()
        assert server.connections == 1
    pool.close()


async def test_a_chunked_body_cut_before_its_last_chunk_is_an_error():
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n"
    error, kept = await read_one_answer(raw, close=True)
    assert isinstance(error, http1.UpstreamBroke) and kept == 0


async def test_a_reset_during_a_body_without_a_length_is_an_error_not_its_end():
    async def handler(reader, writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: 1\n\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        writer.transport.abort()

    pool = http1.Pool()
    async with RawServer(handler) as server:
        answer = await call(pool, server.url)
        received = b""
        with pytest.raises(http1.UpstreamBroke, match="reset"):
            async for chunk in answer.chunks():
                received += chunk
        assert received == b"data: 1\n\n"
        answer.release()
    pool.close()


@pytest.mark.parametrize("body", [
    gzip.compress(b'{"a": 1}')[:10] + b"not deflate at all" + gzip.compress(b'{"a": 1}')[28:],  # corrupt
    gzip.compress(b'{"usage": {"prompt_tokens": 3}}' * 20)[:40],  # cut short, yet the message is whole
    gzip.compress(b'{"a": 1}') + b"trailing junk",  # bytes after the compressed stream's end
], ids=["corrupt", "truncated", "trailing"])
async def test_a_corrupt_gzip_answer_is_an_error_and_its_connection_is_dropped(body: bytes):
    error, kept = await read_one_answer(json_answer(body, b"Content-Encoding: gzip\r\n"), close=False)
    assert isinstance(error, http1.UpstreamBroke) and "compressed" in str(error) and kept == 0


async def test_an_encoding_the_gateway_cannot_read_is_an_error_not_passed_on_as_text():
    with pytest.raises(http1.UpstreamBroke, match="content-encoding"):
        await read_one_answer(json_answer(b"\x1b\x00brotli", b"Content-Encoding: br\r\n"), close=False)


# -- stale connections ------------------------------------------------------------------------------


class ThreadedServer:
    """A server on its own thread, so that it can close a connection while the test's loop is not running."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        self.requests = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1/chat/completions"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.requests += 1
                conn.sendall(json_answer(b'{"n": %d}' % self.requests))
        except OSError:
            return

    def close_all(self) -> None:
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def stop(self) -> None:
        self.close_all()
        self.listener.close()


async def test_a_connection_the_server_closed_just_after_answering_is_retried_on_a_fresh_one():
    """Reused within `TRUSTED_IDLE_SECONDS` of its answer, a connection is not looked at first: a server that
    closed it at once (without saying so) costs the call one retry on a fresh connection, not an error."""
    server = ThreadedServer()
    pool = http1.Pool()
    try:
        answer = await call(pool, server.url)
        await answer.read()
        answer.release()
        server.close_all()  # the FIN is in the kernel at once; the next call comes right after
        answer = await call(pool, server.url)
        assert await answer.read() == b'{"n": 2}'
        answer.release()
        origin = pool.origin(server.url, True)[0]
        assert origin.stats.stale_closed + origin.stats.retries == 1, "seen closed by the loop, or retried: never an error"
        assert len(server.connections) == 2
    finally:
        server.stop()
        pool.close()


async def test_an_idle_connection_the_server_closed_is_seen_before_it_is_reused():
    """The server's FIN is in the socket but the loop has not run since: the pool looks before reusing."""
    server = ThreadedServer()
    pool = http1.Pool()
    try:
        answer = await call(pool, server.url)
        await answer.read()
        answer.release()
        server.close_all()
        time.sleep(0.05)  # blocks the loop: the close is in the kernel, connection_lost has not run
        answer = await call(pool, server.url)
        assert await answer.read() == b'{"n": 2}'
        answer.release()
        origin = pool.origin(server.url, True)[0]
        assert (origin.stats.stale_closed, origin.stats.retries) == (1, 0)
        assert len(server.connections) == 2
    finally:
        server.stop()
        pool.close()


async def test_a_reused_connection_closed_as_the_request_goes_out_is_retried_once_on_a_fresh_one():
    """The server's idle timeout fires as the request arrives: it closes without reading it (a reset)."""
    async def handler(reader, writer, n):
        writer.write(json_answer(b'{"n": %d}' % n))

    closing_on_second = {"armed": False}

    async def serve(reader, writer):  # answers one request per connection, then drops the next unread
        served = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                if served and closing_on_second["armed"]:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                served = True
                writer.write(json_answer(b'{"ok": true}'))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    pool = http1.Pool()
    try:
        answer = await call(pool, url)
        await answer.read()
        answer.release()
        closing_on_second["armed"] = True
        answer = await call(pool, url)  # the reused connection is reset unanswered; a fresh one answers
        assert answer.status == 200 and await answer.read() == b'{"ok": true}'
        answer.release()
        assert pool.origin(url, True)[0].stats.retries == 1
    finally:
        server.close()
        pool.close()


async def test_a_fresh_connection_that_breaks_or_a_reused_one_that_answered_in_part_is_not_retried():
    async def handler(reader, writer, n):
        if n == 1:
            writer.close()  # a fresh connection closed unanswered: the provider's failure, not a race
        elif n == 2:
            writer.write(json_answer(b'{"ok": 1}'))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")  # part of an answer, then the close
            await writer.drain()
            writer.close()

    pool = http1.Pool()
    async with RawServer(handler) as server:
        with pytest.raises(http1.UpstreamBroke):
            await call(pool, server.url)
        answer = await call(pool, server.url)
        await answer.read()
        answer.release()
        with pytest.raises(http1.UpstreamBroke):
            await call(pool, server.url)
        assert pool.origin(server.url, True)[0].stats.retries == 0
        assert len(server.heads) == 3  # nothing was sent twice
    pool.close()


async def test_idle_connections_expire_and_a_servers_keep_alive_hint_shortens_their_life():
    async def handler(reader, writer, n):
        writer.write(json_answer(b"{}", b"Keep-Alive: timeout=1\r\n" if n == 3 else b""))

    pool = http1.Pool()
    async with RawServer(handler) as server:
        origin, target = pool.origin(server.url, True, keepalive=0.2)

        async def one() -> None:
            answer = await http1.post(origin, target, [], b"{}", 2.0, 2.0)
            await answer.read()
            answer.release()

        await one()
        await one()  # within 0.2 s: reused
        assert server.connections == 1
        await asyncio.sleep(0.3)
        await one()  # expired: a new connection (its answer says timeout=1, so it lives 0 s more)
        assert server.connections == 2
        origin.configure(100, 30.0)
        await one()
        assert server.connections == 3  # the hint (1 s, less a second's margin) still applied to the 2nd connection
    pool.close()


# -- the bound per provider --------------------------------------------------------------------------


async def test_no_more_than_max_connections_sockets_under_500_concurrent_calls():
    open_now = peak = 0

    async def serve(reader, writer):
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                await asyncio.sleep(0.01)
                writer.write(json_answer(b'{"ok": true}'))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now -= 1
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    pool = http1.Pool()
    origin, target = pool.origin(url, True, provider="p", max_connections=8)

    async def one() -> bytes:
        answer = await http1.post(origin, target, [], b"{}", 10.0, 5.0)
        try:
            return await answer.read()
        finally:
            answer.release()

    try:
        bodies = await asyncio.gather(*(one() for _ in range(500)))
        assert bodies == [b'{"ok": true}'] * 500
        assert peak == 8 and origin.open <= 8
        stats = pool.stats()[0]
        assert stats["provider"] == "p" and stats["waits"] > 400 and stats["wait_seconds"] > 0 and stats["waiting"] == 0
    finally:
        server.close()
        pool.close()


async def test_a_call_that_finds_every_connection_busy_for_the_connect_timeout_gets_pool_exhausted():
    release = asyncio.Event()

    async def handler(reader, writer, n):
        await release.wait()
        writer.write(json_answer(b"{}"))

    pool = http1.Pool()
    async with RawServer(handler) as server:
        origin, target = pool.origin(server.url, True, max_connections=1)
        first = asyncio.create_task(http1.post(origin, target, [], b"{}", 2.0, 2.0))
        await asyncio.sleep(0.05)
        with pytest.raises(http1.PoolExhausted):
            await http1.post(origin, target, [], b"{}", 0.2, 2.0)
        assert origin.stats.wait_timeouts == 1 and not origin.waiters
        release.set()
        answer = await first
        await answer.read()
        answer.release()
        again = await http1.post(origin, target, [], b"{}", 0.5, 2.0)  # the slot was not lost
        release.set()
        await again.read()
        again.release()
        assert server.connections == 1
    pool.close()
