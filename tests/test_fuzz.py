"""Bad input, tried: generated request bodies, garbage SSE, and clients that vanish at every stage.

None may crash the daemon, leak a concurrency slot or corrupt the ledger.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noor_daemon.gateway.wire import WIRES
from noor_daemon.gateway.wire import anthropic as anthropic_wire
from noor_daemon.gateway.wire import openai as openai_wire
from noor_daemon.gateway.wire.sse import EventSplitter
from noor_daemon.server import GatewayRunner
from noor_daemon.state import LIMITER
from tests.conftest import SIMULATOR_CONFIG

pytestmark = pytest.mark.engine_independent

# -- pure parsing: properties ---------------------------------------------------------

_EVENT = st.builds(
    lambda name, data: (f"event: {name}\n" if name else "").encode() + b"data: " + data + b"\n\n",
    st.one_of(st.none(), st.sampled_from(["message_start", "message_delta", "message_stop", "content_block_delta", "ping"])),
    st.binary(max_size=64).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
)


@given(st.lists(_EVENT, max_size=20), st.lists(st.integers(min_value=1, max_value=50), max_size=30))
def test_event_splitter_finds_the_same_events_however_the_bytes_are_cut(events, cuts):
    stream = b"".join(events)
    whole = EventSplitter().feed(stream)
    splitter, pieces, position = EventSplitter(), [], 0
    for cut in cuts:
        pieces += splitter.feed(stream[position : position + cut])
        position += cut
    pieces += splitter.feed(stream[position:])
    assert pieces == whole
    assert b"".join(pieces) == stream


@given(st.lists(st.binary(max_size=200), max_size=30))
def test_stream_meters_survive_garbage(chunks):
    meters = [openai_wire.ChatStreamMeter(True), openai_wire.ResponsesStreamMeter(), anthropic_wire.MessagesStreamMeter()]
    splitter = EventSplitter()
    for chunk in chunks:
        for event in splitter.feed(chunk):
            for meter in meters:
                forward, terminal = meter.on_event(event)
                assert isinstance(forward, bool) and isinstance(terminal, bool)
    for meter in meters:
        assert meter.usage is None or (meter.usage.prompt_tokens >= 0 and meter.usage.completion_tokens >= 0)


def _chat_event(kind: str, text: str) -> bytes:
    if kind == "content":
        return b"data: " + orjson.dumps({"choices": [{"delta": {"content": text}}], "usage": None}) + b"\n\n"
    if kind == "usage":
        return b"data: " + orjson.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": len(text)}}) + b"\n\n"
    if kind == "error":
        return b"data: " + orjson.dumps({"error": {"type": "server_error", "message": text}}) + b"\n\n"
    return b"data: [DONE]\n\n"


def _messages_event(kind: str, text: str, tight: bool = False) -> bytes:
    data = {
        "message_start": {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}},
        "content_block_delta": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": text}},
        "ping": {"type": "ping"},
        "message_delta": {"type": "message_delta", "usage": {"output_tokens": len(text)}},
        "message_stop": {"type": "message_stop"},
        "error": {"type": "error", "error": {"type": "overloaded_error", "message": text}},
    }[kind]
    return (f"event:{kind}\n".encode() if tight else f"event: {kind}\n".encode()) + b"data: " + orjson.dumps(data) + b"\n\n"


_TEXT = st.text(alphabet=st.sampled_from('ab "error" usage [DONE] message_ event:c\n\\{}'), max_size=12)
_CHAT_STREAM = st.lists(st.tuples(st.sampled_from(["content"] * 6 + ["usage", "error", "done"]), _TEXT), max_size=30)
_MESSAGES_STREAM = st.lists(
    st.tuples(st.sampled_from(["content_block_delta"] * 6 + ["ping", "message_start", "message_delta", "message_stop", "error"]),
              _TEXT, st.booleans()), max_size=30,
)  # the bool: `event:name` without the space, which SSE allows


def _relayed(meter, stream: bytes, cuts: list[int]) -> tuple[bytes, list[bytes]]:
    splitter, sent, held, position = EventSplitter(), [], [], 0
    for cut in [*cuts, len(stream)]:
        sent.append(meter.relay(splitter.feed(stream[position : position + cut]), held))
        position += cut
    return b"".join(sent), held


def _per_event(meter, stream: bytes) -> tuple[bytes, list[bytes]]:
    sent, held = [], []
    for event in EventSplitter().feed(stream):
        forward, terminal = meter.on_event(event)
        if terminal or held:
            held.append(event)
        elif forward:
            sent.append(event)
    return b"".join(sent), held


@given(st.one_of(st.tuples(st.just("chat"), _CHAT_STREAM), st.tuples(st.just("messages"), _MESSAGES_STREAM)),
       st.booleans(), st.lists(st.integers(min_value=1, max_value=400), max_size=12))
def test_quiet_blocks_relay_and_meter_exactly_like_one_event_at_a_time(stream, strip, cuts):
    """The fast path (whole blocks, and the runs of events between those that carry usage, an error or the
    end) forwards the same bytes, holds the same events and meters the same usage and content count as
    `on_event` on every event."""
    wire, events = stream
    make = (lambda: openai_wire.ChatStreamMeter(strip)) if wire == "chat" else anthropic_wire.MessagesStreamMeter
    render = _chat_event if wire == "chat" else _messages_event
    raw = b"".join(render(*event) for event in events)
    fast, slow = make(), make()
    assert _relayed(fast, raw, cuts) == _per_event(slow, raw)
    assert (fast.usage, fast.content_events, fast.error_status) == (slow.usage, slow.content_events, slow.error_status)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
                    max_leaves=20))
def test_usage_extraction_never_raises_on_any_json(value):
    payload = {"usage": value} if not isinstance(value, dict) else value
    for endpoint in ("chat/completions", "responses", "embeddings", "messages"):
        usage = WIRES[endpoint].usage_from_body(payload)
        assert usage is None or (usage.prompt_tokens >= 0 and usage.completion_tokens >= 0)


# -- the daemon: generated requests -----------------------------------------------------

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_BODIES = st.one_of(
    st.binary(max_size=300),
    _JSONISH.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"model": st.one_of(st.sampled_from(["sim-gpt", "sim-claude", "nope"]), _JSONISH)},
        optional={"messages": _JSONISH, "stream": _JSONISH, "max_tokens": _JSONISH, "stream_options": _JSONISH},
    ).map(lambda v: json.dumps(v).encode()),
)


async def test_generated_requests_get_api_shaped_answers_and_leak_nothing(daemon):
    key = await daemon.create_key()
    seen: list[tuple[str, bytes]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(path=st.sampled_from(["chat/completions", "completions", "responses", "embeddings", "messages", "messages/count_tokens"]), body=_BODIES)
    def collect(path: str, body: bytes) -> None:
        seen.append((path, body))

    collect()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as session:
        for path, body in seen:
            async with session.post(f"{daemon.base_url}/{path}", data=body) as response:
                payload = await response.read()
                assert response.status < 500, (path, body, payload[:200])
                if response.status >= 400:
                    error = json.loads(payload)
                    if path.startswith("messages"):
                        assert error["type"] == "error" and "message" in error["error"]
                    else:
                        assert set(error["error"]) == {"message", "type", "param", "code"}
    rows = await daemon.usage_rows()
    assert len(rows) == len(seen)
    assert daemon.app[LIMITER].in_flight("account", rows[0]["account_id"]) == 0


# -- garbage from upstream, clients that vanish -------------------------------------------------


async def _garbage_upstream(chunks: list[bytes]) -> tuple[web.AppRunner, int]:
    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = GatewayRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


GARBAGE = [
    [b"data: {not json\n\n", b"data: [DONE]\n\n"],
    [b"\x00\xff\xfe garbage without any framing"],
    [b"data: " + b"x" * 100_000 + b"\n\n"],
    [b'data: {"choices":[],"usage":{"prompt_tokens":"seven","completion_tokens":-3}}\n\n', b"data: [DONE]\n\n"],
    [b"event: weird\r\ndata: {}\r\n\r\n", b"data: [DONE]"],
    [],
]


async def test_garbage_sse_from_an_upstream_is_survived_and_metered(start_daemon, monkeypatch):
    monkeypatch.setenv("GARBAGE_KEY", "x")
    for chunks in GARBAGE:
        runner, port = await _garbage_upstream(chunks)
        try:
            config = f"""
[[providers]]
name = "garbage"
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
api_key = "env:GARBAGE_KEY"
[[models]]
name = "g"
routes = [{{ provider = "garbage", model = "g" }}]
"""
            daemon = await start_daemon(config)
            key = await daemon.create_key()
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{daemon.base_url}/chat/completions",
                    json={"model": "g", "messages": [], "stream": True},
                    headers={"Authorization": f"Bearer {key}"},
                ) as response:
                    await response.read()
            rows = await daemon.usage_rows()
            assert len(rows) == 1 and rows[0]["prompt_tokens"] >= 0 and rows[0]["completion_tokens"] >= 0
        finally:
            await runner.cleanup()


async def test_clients_vanishing_at_every_stage_leak_no_slot(start_daemon):
    daemon = await start_daemon(
        SIMULATOR_CONFIG.replace("latency_scale = 0", "latency_scale = 0.3") + "\n[plans.free]\nconcurrent_requests = 50\n"
    )
    key = await daemon.create_key()
    body = orjson.dumps({"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )

    async def vanish(stage: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(daemon.url.rsplit(":", 1)[1]))
        if stage == "mid-headers":
            writer.write(request[:40])
        elif stage == "mid-body":
            writer.write(request + body[: len(body) // 2])
        else:
            writer.write(request + body)
        await writer.drain()
        if stage == "before-first-byte":
            await asyncio.sleep(0.05)
        elif stage == "after-first-event":
            await reader.readuntil(b"\n\n")
        elif stage == "mid-stream":
            for _ in range(6):
                await reader.readuntil(b"\n\n")
        writer.transport.abort()

    stages = ["mid-headers", "mid-body", "before-first-byte", "after-first-event", "mid-stream"]
    await asyncio.gather(*(vanish(stage) for stage in stages * 4))

    for _ in range(200):
        rows = await daemon.usage_rows()
        if len(rows) >= 16 and daemon.app[LIMITER].in_flight("account", rows[0]["account_id"]) == 0:
            break
        await asyncio.sleep(0.05)
    rows = await daemon.usage_rows()
    account_id = rows[0]["account_id"]
    assert daemon.app[LIMITER].in_flight("account", account_id) == 0
    assert {r["status"] for r in rows} <= {499, 504, 200}
    assert len(rows) == 16  # the four stages that reached the proxy (all but mid-headers), four times each

    async with aiohttp.ClientSession() as session:  # still serving
        async with session.post(
            f"{daemon.base_url}/chat/completions", data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        ) as response:
            assert response.status == 200
            assert (await response.read()).rstrip().endswith(b"data: [DONE]")
    db = sqlite3.connect(daemon.data_dir / "ledger.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
