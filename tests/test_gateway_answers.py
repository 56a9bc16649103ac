"""`WholeAnswer` and `EventStream` put on the wire what aiohttp's `Response` and `StreamResponse` would, byte for
byte but the Date.

The proxy answers with its own serializer (noor_daemon/gateway/answers.py); these tests serve the same answer
both ways from one real aiohttp server and compare the raw bytes a client reads, for keep-alive,
`Connection: close` and HTTP/1.0 callers, then check the cases aiohttp's serializer guards.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from noor_daemon.gateway.answers import EventStream, WholeAnswer, whole_answer
from noor_daemon.server import GatewayRunner

pytestmark = pytest.mark.engine_independent

BODY = b'{"id":"chatcmpl-1","choices":[{"message":{"role":"assistant","content":"ok"}}]}'
HEADERS = {"x-request-id": "req_1", "x-ratelimit-remaining-requests": "99", "x-noor-budget-remaining": "12.50"}
INJECTED = {"x-upstream": "a\r\nx-injected: yes"}
EVENTS = [b'data: {"choices":[{"delta":{"content":"o"}}]}\n\n', b'data: {"choices":[{"delta":{"content":"k"}}]}\n\n']
TAIL = b"data: [DONE]\n\n"
STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **HEADERS}


@pytest.fixture
async def server():
    async def whole(request: web.Request) -> web.StreamResponse:
        await request.read()
        return whole_answer(int(request.query.get("status", 200)), BODY, "application/json", HEADERS)

    async def aiohttps(request: web.Request) -> web.StreamResponse:
        await request.read()
        status = int(request.query.get("status", 200))
        if status in (204, 304):
            return web.Response(status=status, headers=HEADERS)
        return web.Response(status=status, body=BODY, content_type="application/json", headers=HEADERS)

    async def injected(request: web.Request) -> web.StreamResponse:
        if request.query.get("by") == "aiohttp":
            return web.Response(body=BODY, content_type="application/json", headers=INJECTED)
        return WholeAnswer(200, BODY, "application/json", INJECTED)

    async def stream(request: web.Request) -> web.StreamResponse:
        """The proxy's sequence: prepare when the first events are in, write each run of events, end with a tail."""
        await request.read()
        if request.query.get("by") == "aiohttp":
            response = web.StreamResponse(status=200, headers=STREAM_HEADERS)
            response._send_headers_immediately = False  # as the proxy's stream before EventStream: head with data
        else:
            response = EventStream(STREAM_HEADERS)
        await response.prepare(request)
        for event in EVENTS:
            await response.write(event)
            await response.write(b"")  # nothing to send: no empty chunk (it would end the body)
        await response.write_eof(TAIL if request.query.get("tail", "1") == "1" else b"")
        return response

    app = web.Application()
    app.add_routes([web.post("/whole", whole), web.post("/aiohttp", aiohttps), web.post("/injected", injected),
                    web.post("/stream", stream)])
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    host, port = await runner.listen("127.0.0.1", 0)
    yield host, port
    await runner.cleanup()


async def exchange(address: tuple[str, int], request: bytes, *, answers: int = 1) -> bytes:
    """The raw bytes read back for `request` (sent `answers` times on one connection), until the server closes or
    the answers are in (each ends with BODY, or with its head for a status without a body)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request * answers)
        data = b""
        while data.count(b"HTTP/1.") < answers or not data.endswith((BODY, b"\r\n\r\n", TAIL)):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        writer.close()


def without_date(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.lower().startswith(b"date: "))


def post(path: str, version: str = "1.1", extra: str = "") -> bytes:
    return f"POST {path} HTTP/{version}\r\nHost: x\r\n{extra}Content-Length: 2\r\n\r\n{{}}".encode()


@pytest.mark.parametrize(
    ("version", "extra"),
    [("1.1", ""), ("1.1", "Connection: close\r\n"), ("1.0", ""), ("1.0", "Connection: keep-alive\r\n")],
    ids=["keep-alive", "close", "http/1.0", "http/1.0 keep-alive"],
)
async def test_a_whole_answer_is_what_aiohttp_would_send(server, version, extra):
    ours = await exchange(server, post("/whole", version, extra))
    theirs = await exchange(server, post("/aiohttp", version, extra))
    assert ours.endswith(BODY) and b"\r\nDate: " in ours
    assert without_date(ours) == without_date(theirs)


@pytest.mark.parametrize("status", [201, 404, 429, 500, 204])
async def test_every_status_is_sent_as_aiohttp_sends_it(server, status):
    ours = await exchange(server, post(f"/whole?status={status}"))
    theirs = await exchange(server, post(f"/aiohttp?status={status}"))
    assert ours.startswith(f"HTTP/1.1 {status} ".encode())
    assert without_date(ours) == without_date(theirs)


async def test_answers_follow_each_other_on_one_kept_alive_connection(server):
    raw = await exchange(server, post("/whole"), answers=3)
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 3 and raw.count(BODY) == 3


async def test_a_header_value_with_a_line_break_never_starts_a_header(server):
    raw = await exchange(server, post("/injected"))
    assert b"x-injected" not in raw
    assert raw == await exchange(server, post("/injected?by=aiohttp"))  # aiohttp refuses it the same way


@pytest.mark.parametrize(
    ("version", "extra"),
    [("1.1", ""), ("1.1", "Connection: close\r\n"), ("1.0", "")],
    ids=["keep-alive", "close", "http/1.0"],
)
@pytest.mark.parametrize("tail", ["1", "0"], ids=["with a tail", "without"])
async def test_an_event_stream_is_what_aiohttp_would_send(server, version, extra, tail):
    ours = await exchange(server, post(f"/stream?tail={tail}", version, extra))
    theirs = await exchange(server, post(f"/stream?by=aiohttp&tail={tail}", version, extra))
    assert without_date(ours) == without_date(theirs)
    if version == "1.1":
        assert b"Transfer-Encoding: chunked" in ours and ours.endswith(b"0\r\n\r\n")
        assert ours.count(b"\r\n0\r\n\r\n") == 1  # one end of the body, after every event
    else:
        assert ours.endswith(TAIL if tail == "1" else EVENTS[-1]) and b"chunked" not in ours


async def test_streams_follow_each_other_on_one_kept_alive_connection(server):
    raw = await exchange(server, post("/stream"), answers=2)
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2 and raw.count(TAIL) == 2
