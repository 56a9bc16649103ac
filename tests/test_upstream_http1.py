"""The request path's HTTP/1.1 client (`gateway/http1.py`) against raw servers on loopback that send exact bytes."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest

from noor_daemon.gateway import http1

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
