"""Every error path of the gateway, checked through the real SDKs: status code, body shape, and a ledger row.

OpenAI endpoints answer `{"error": {message, type, param, code}}`; Anthropic endpoints answer
`{"type": "error", "error": {type, message}}`. Every call that reaches the gateway is metered,
errors included, with zero tokens.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import aiohttp
import anthropic
import openai
import pytest
from gateway_helpers import anthropic_client, openai_client, tokens, wait_for_rows
from standin_upstream import reply_text, standin_config

from noor_daemon.domain.api_keys import KEY_PREFIX, generate_key
from noor_daemon.domain.names import UNKNOWN_MODEL
from noor_daemon.state import ACCOUNTS, KEYRING, PROXY

pytestmark = pytest.mark.engine_independent

OPENAI_MESSAGES = [{"role": "user", "content": "hello"}]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_providers(port: int) -> str:
    return f"""
[[providers]]
name = "dead-openai"
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
connect_timeout = 2

[[providers]]
name = "dead-anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{port}"
connect_timeout = 2

[[models]]
name = "gpt-dead"
routes = [{{ provider = "dead-openai", model = "x" }}]

[[models]]
name = "claude-dead"
routes = [{{ provider = "dead-anthropic", model = "x" }}]
"""


@pytest.fixture
async def gw(standin, start_daemon):
    daemon = await start_daemon(standin_config(standin, extra=dead_providers(closed_port())))
    key = await daemon.create_key("errors@example.com")
    return daemon, standin, key


def openai_error(exc: openai.APIStatusError, status: int, *, type_: str | None = None, code: str | None = None) -> dict:
    """Check an OpenAI-shaped error and return its inner `error` object."""
    assert exc.status_code == status
    body = exc.response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert exc.body == error  # what the SDK hands to the caller
    if type_ is not None:
        assert error["type"] == type_
    if code is not None:
        assert error["code"] == code
    return error


def anthropic_error(exc: anthropic.APIStatusError, status: int, type_: str) -> dict:
    """Check an Anthropic-shaped error and return its inner `error` object."""
    assert exc.status_code == status
    body = exc.response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert exc.body == body
    error = body["error"]
    assert error["type"] == type_
    assert isinstance(error["message"], str) and error["message"]
    assert exc.type == type_
    return error


async def last_row(daemon, status: int, *, count: int | None = None) -> dict:
    rows = await daemon.usage_rows()
    if count is not None:
        assert len(rows) == count
    row = rows[-1]
    assert row["status"] == status
    assert tokens(row) == (0, 0), "a refused or failed call consumed no tokens"
    assert row["estimated"] == 0
    return row


# -- 400 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, anthropic_shape",
    [("/v1/chat/completions", False), ("/v1/embeddings", False), ("/v1/messages", True), ("/v1/messages/count_tokens", True)],
)
@pytest.mark.parametrize("raw", [b'{"model": "gpt-test", "messages": [', b"[1, 2]", b"\xff\xfe not json"])
async def test_malformed_json_is_400(gw, path, anthropic_shape, raw):
    daemon, standin, key = gw
    async with aiohttp.ClientSession() as http:
        async with http.post(
            daemon.url + path, data=raw, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        ) as response:
            assert response.status == 400
            assert response.content_type == "application/json"
            body = await response.json()
    if anthropic_shape:
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"]
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["type"] == "invalid_request_error"
    assert standin.requests == []
    row = await last_row(daemon, 400, count=1)
    assert row["key_id"] is not None and row["model"] == UNKNOWN_MODEL  # never an empty name


async def test_missing_model_is_400(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.post("/chat/completions", body={"messages": OPENAI_MESSAGES}, cast_to=object)
    error = openai_error(caught.value, 400, type_="invalid_request_error")
    assert error["param"] == "model"
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.BadRequestError) as caught_a:
            await client.post("/v1/messages", body={"max_tokens": 5, "messages": OPENAI_MESSAGES}, cast_to=object)
    anthropic_error(caught_a.value, 400, "invalid_request_error")
    assert standin.requests == []
    await last_row(daemon, 400, count=2)


async def test_non_boolean_stream_is_400(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, extra_body={"stream": "yes"})
    assert openai_error(caught.value, 400)["param"] == "stream"
    assert standin.requests == []


# -- 401 -----------------------------------------------------------------------------


def broken_checksum(key: str) -> str:
    """The same key with one character of its secret body changed."""
    i = len(KEY_PREFIX) + 5
    return key[:i] + ("A" if key[i] != "A" else "B") + key[i + 1 :]


@pytest.mark.parametrize("kind", ["garbage", "unknown", "checksum", "revoked", "expired", "not-noor"])
async def test_bad_keys_are_401(gw, kind):
    daemon, standin, good = gw
    if kind == "garbage":
        key = "sk-noor-definitely-not-a-key"
    elif kind == "unknown":
        key = generate_key()  # well formed, checksum fine, never issued
    elif kind == "checksum":
        key = broken_checksum(good)
    elif kind == "not-noor":
        key = "sk-proj-" + "a" * 48
    elif kind == "revoked":
        key = await daemon.create_key("errors@example.com")
        async with openai_client(daemon, key) as client:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)  # works before
        [issued] = [k for k in daemon.app[KEYRING].keys.values() if k.prefix == key[: len(k.prefix)] and k.id]
        await daemon.app[ACCOUNTS].revoke_key(issued.id)
    else:
        now_ms = int(time.time() * 1000)
        key = await daemon.create_key("errors@example.com", expires_at=now_ms - 1000)
    before = len(standin.requests)
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    error = openai_error(caught.value, 401, type_="invalid_request_error", code="invalid_api_key")
    assert key not in error["message"]
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.AuthenticationError) as caught_a:
            await client.messages.create(model="claude-test", max_tokens=5, messages=OPENAI_MESSAGES)
    anthropic_error(caught_a.value, 401, "authentication_error")
    assert len(standin.requests) == before, "a refused call must never reach the upstream"
    rows = await daemon.usage_rows()
    for row in rows[-2:]:
        assert row["status"] == 401 and tokens(row) == (0, 0)
        assert row["key_id"] is None or kind in ("revoked", "expired")


async def test_missing_key_is_401(gw):
    daemon, standin, _ = gw
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{daemon.base_url}/chat/completions", json={"model": "gpt-test", "messages": OPENAI_MESSAGES}) as r:
            assert r.status == 401
            body = await r.json()
        async with http.post(f"{daemon.base_url}/messages", json={"model": "claude-test", "messages": OPENAI_MESSAGES}) as r:
            assert r.status == 401
            body_a = await r.json()
    assert body["error"]["code"] == "invalid_api_key"
    assert body_a["type"] == "error" and body_a["error"]["type"] == "authentication_error"
    await last_row(daemon, 401, count=2)


async def test_revocation_takes_effect_on_the_next_request(gw):
    daemon, standin, _ = gw
    issued_key = await daemon.create_key("errors@example.com")
    issued = next(k for k in daemon.app[KEYRING].keys.values() if issued_key.startswith(k.prefix) and k.revoked_at is None)
    async with openai_client(daemon, issued_key) as client:
        await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
        await daemon.app[ACCOUNTS].revoke_key(issued.id)
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)


# -- 403, 404, 413 ---------------------------------------------------------------------


async def test_model_not_allowed_for_key_is_403(gw):
    daemon, standin, _ = gw
    key = await daemon.create_key("errors@example.com", allowed_models=["gpt-test"])
    async with openai_client(daemon, key) as client:
        await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(model="gpt-test-mini", messages=OPENAI_MESSAGES)
    openai_error(caught.value, 403, code="model_not_allowed")
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.PermissionDeniedError) as caught_a:
            await client.messages.create(model="claude-test", max_tokens=5, messages=OPENAI_MESSAGES)
    anthropic_error(caught_a.value, 403, "permission_error")
    assert len(standin.requests) == 1
    row = await last_row(daemon, 403, count=3)
    assert row["model"] == "claude-test" and row["key_id"] is not None


async def test_unknown_model_is_404(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="no-such-model", messages=OPENAI_MESSAGES)
    error = openai_error(caught.value, 404, type_="invalid_request_error", code="model_not_found")
    assert error["param"] == "model" and "no-such-model" in error["message"]
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.NotFoundError) as caught_a:
            await client.messages.create(model="no-such-model", max_tokens=5, messages=OPENAI_MESSAGES)
    anthropic_error(caught_a.value, 404, "not_found_error")
    assert standin.requests == []
    row = await last_row(daemon, 404, count=2)
    assert row["model"] == UNKNOWN_MODEL  # the caller's string never reaches the ledger
    # A name of no model's shape is not even echoed in the error.
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="gpt-<script>" + "x" * 300, messages=OPENAI_MESSAGES)
    assert "<script>" not in str(caught.value) and "x" * 100 not in str(caught.value)


async def test_body_over_the_limit_is_413(standin, start_daemon):
    daemon = await start_daemon(standin_config(standin, max_body_bytes=2048))
    key = await daemon.create_key("big@example.com")
    huge = [{"role": "user", "content": "x" * 5000}]
    async with openai_client(daemon, key) as client:
        await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x" * 100}])
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=huge)
    openai_error(caught.value, 413, type_="invalid_request_error", code="request_too_large")
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.APIStatusError) as caught_a:
            await client.messages.create(model="claude-test", max_tokens=5, messages=huge)
    anthropic_error(caught_a.value, 413, "request_too_large")
    assert len(standin.requests) == 1
    await last_row(daemon, 413, count=3)


async def test_body_over_the_limit_without_content_length_is_413(standin, start_daemon):
    daemon = await start_daemon(standin_config(standin, max_body_bytes=2048))
    key = await daemon.create_key("big@example.com")

    async def chunked():
        yield b'{"model": "gpt-test", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{daemon.base_url}/chat/completions", data=chunked(), headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 413
            body = await r.json()
    assert body["error"]["code"] == "request_too_large"
    assert standin.requests == []
    await last_row(daemon, 413, count=1)


async def _raw_call(daemon, head: bytes, pieces: list[bytes]) -> bytes:
    """One HTTP/1.1 exchange on a raw socket: `head`, then each piece after a pause (none before the first)."""
    host, port = daemon.base_url.removeprefix("http://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + pieces[0])
        for piece in pieces[1:]:
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(piece)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_a_body_that_came_with_its_head_or_after_it_is_the_same_call(standin, start_daemon):
    """The proxy takes a body that arrived with the request's head as it lies in the buffer, and reads one that
    is still coming; both give the same answer, the size limit holds for both, and each call is metered."""
    daemon = await start_daemon(standin_config(standin, max_body_bytes=2048))
    key = await daemon.create_key("pieces@example.com")
    body = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}'
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    whole = await _raw_call(daemon, head, [body])
    split = await _raw_call(daemon, head, [b"", body[:20], body[20:]])
    for answer in (whole, split):
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]
        assert b'"chat.completion"' in answer
    chunk = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "' + b"z" * 3000 + b'"}]}'
    chunked_head = head.replace(f"Content-Length: {len(body)}".encode(), b"Transfer-Encoding: chunked")
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
    for pieces in ([framed], [b"", framed[:1500], framed[1500:]]):  # over the limit, buffered whole or still coming
        answer = await _raw_call(daemon, chunked_head, pieces)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"request_too_large" in answer
    rows = await daemon.usage_rows()
    assert [r["status"] for r in rows] == [200, 200, 413, 413]
    assert len(standin.requests) == 2


# -- upstream failures -------------------------------------------------------------------


async def test_upstream_connection_refused_is_502(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-dead", messages=OPENAI_MESSAGES)
    openai_error(caught.value, 502, type_="server_error")
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.InternalServerError) as caught_a:
            await client.messages.create(model="claude-dead", max_tokens=5, messages=OPENAI_MESSAGES)
    anthropic_error(caught_a.value, 502, "api_error")
    rows = await daemon.usage_rows()
    assert [(r["status"], r["provider"]) for r in rows] == [(502, "dead-openai"), (502, "dead-anthropic")]
    await last_row(daemon, 502)


async def test_upstream_closing_the_connection_is_502(gw):
    daemon, standin, key = gw
    standin.close()
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    openai_error(caught.value, 502, type_="server_error")
    await last_row(daemon, 502, count=1)


async def test_first_byte_timeout_is_504(standin, start_daemon):
    daemon = await start_daemon(standin_config(standin, first_byte_timeout=0.3))
    key = await daemon.create_key("slow@example.com")
    standin.hang()
    started = time.monotonic()
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
    openai_error(caught.value, 504, type_="server_error")
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.APIStatusError) as caught_a:
            await client.messages.create(model="claude-test", max_tokens=5, messages=OPENAI_MESSAGES)
    anthropic_error(caught_a.value, 504, "api_error")
    assert time.monotonic() - started < 3
    await last_row(daemon, 504, count=2)


@pytest.mark.parametrize("status", [500, 429, 400, 503])
async def test_openai_upstream_errors_pass_through_with_their_body(gw, status):
    daemon, standin, key = gw
    standin.fail(status, f"upstream says no ({status})", headers={"retry-after": "7"})
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    error = openai_error(caught.value, status)
    assert error["message"] == f"upstream says no ({status})", "the upstream's own error body reaches the client"
    if status in (429, 503):
        assert caught.value.response.headers.get("retry-after") == "7", "Retry-After lets SDKs back off"
    row = await last_row(daemon, status, count=1)
    assert row["provider"] == "standin-openai" and row["model"] == "gpt-test"


@pytest.mark.parametrize("status, cls, type_", [(500, anthropic.InternalServerError, "api_error"), (429, anthropic.RateLimitError, "rate_limit_error"), (529, anthropic.OverloadedError, "overloaded_error")])
async def test_anthropic_upstream_errors_pass_through_with_their_body(gw, status, cls, type_):
    daemon, standin, key = gw
    standin.fail(status, f"anthropic upstream says no ({status})")
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(cls) as caught:
            await client.messages.create(model="claude-test", max_tokens=5, messages=OPENAI_MESSAGES, stream=True)
    error = anthropic_error(caught.value, status, type_)
    assert error["message"] == f"anthropic upstream says no ({status})"
    row = await last_row(daemon, status, count=1)
    assert row["stream"] == 0  # nothing was streamed


async def test_upstream_error_on_a_stream_request_is_a_plain_error(gw):
    daemon, standin, key = gw
    standin.fail(500, "stream refused")
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
    assert openai_error(caught.value, 500)["message"] == "stream refused"
    await last_row(daemon, 500, count=1)


async def test_upstream_cut_mid_stream_raises_in_the_sdk_and_is_metered(gw):
    daemon, standin, key = gw
    standin.close_mid_stream(after=3)
    received = []
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk)
    assert len(received) == 3
    assert caught.value.body["code"] in ("upstream", "502") or "Upstream" in caught.value.message
    [row] = await daemon.usage_rows()
    assert row["status"] == 502 and row["stream"] == 1
    assert row["estimated"] == 1 and row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


async def test_anthropic_upstream_cut_mid_stream(gw):
    daemon, standin, key = gw
    standin.close_mid_stream(after=5)  # message_start, block start, ping, two deltas
    async with anthropic_client(daemon, key) as client:
        stream = await client.messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "one two three four"}], stream=True
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            async for _ in stream:
                pass
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "api_error"
    [row] = await daemon.usage_rows()
    assert row["status"] == 502 and row["stream"] == 1
    # message_start reported the exact input; the output was cut short and is estimated from what was delivered
    assert row["prompt_tokens"] == standin.last.usage[0]
    assert row["completion_tokens"] >= 2 and row["estimated"] == 1


async def test_anthropic_error_event_mid_stream_is_metered_with_its_status(gw):
    """Anthropic reports overload mid-stream as an `error` event; the row must not say 200."""
    daemon, standin, key = gw
    standin.error_mid_stream(after=5, status=529, message="Overloaded mid-stream")
    async with anthropic_client(daemon, key) as client:
        stream = await client.messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "one two three"}], stream=True
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            async for _ in stream:
                pass
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded mid-stream"}
    [row] = await daemon.usage_rows()  # committed before the client saw the error event
    assert row["status"] == 529 and row["stream"] == 1
    assert row["prompt_tokens"] == standin.last.usage[0] and row["estimated"] == 1


@pytest.mark.parametrize("status", [500, 429])
async def test_openai_error_chunk_mid_stream_is_metered_with_its_status(gw, status):
    daemon, standin, key = gw
    standin.error_mid_stream(after=3, status=status, message="the model broke mid-stream")
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                pass
    assert caught.value.message == "the model broke mid-stream"
    [row] = await daemon.usage_rows()  # committed before the client saw the error chunk
    assert row["status"] == status and row["stream"] == 1 and row["estimated"] == 1


@pytest.mark.parametrize("status", [500, 429])
async def test_responses_error_event_mid_stream_is_metered_with_its_status(gw, status):
    daemon, standin, key = gw
    standin.error_mid_stream(after=5, status=status, message="responses broke")
    async with openai_client(daemon, key) as client:
        stream = await client.responses.create(model="gpt-test", input="hello", stream=True)
        events = [event async for event in stream]
    assert events[-1].type == "error" and events[-1].message == "responses broke"  # the SDK yields it as an event
    [row] = await daemon.usage_rows()
    assert row["status"] == status and row["endpoint"] == "responses" and row["estimated"] == 1


async def test_idle_upstream_mid_stream_is_504(standin, start_daemon):
    daemon = await start_daemon(standin_config(standin, idle_timeout=0.3))
    key = await daemon.create_key("idle@example.com")
    standin.hang_mid_stream(after=2)
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    [row] = await wait_for_rows(daemon, 1)
    assert row["status"] == 504 and row["stream"] == 1


# -- no usage: estimated rows --------------------------------------------------------------


@pytest.mark.parametrize("stream, how", [(False, "absent"), (True, "absent"), (False, "empty")])
async def test_openai_upstream_without_usage_is_estimated(gw, stream, how):
    daemon, standin, key = gw
    standin.no_usage() if how == "absent" else standin.empty_usage()
    async with openai_client(daemon, key) as client:
        if stream:
            s = await client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": "no usage here"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            text = "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
        else:
            reply = await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "no usage here"}])
            text = reply.choices[0].message.content
    assert text == reply_text("no usage here")
    assert standin.last.usage is None
    [row] = await daemon.usage_rows()
    assert row["status"] == 200 and row["estimated"] == 1
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("how", ["absent", "empty"])
async def test_anthropic_upstream_without_usage_is_estimated(gw, stream, how):
    daemon, standin, key = gw
    standin.no_usage() if how == "absent" else standin.empty_usage()
    async with anthropic_client(daemon, key) as client:
        if stream:
            s = await client.messages.create(model="claude-test", max_tokens=50, messages=OPENAI_MESSAGES, stream=True)
            async for _ in s:
                pass
        else:
            await client.messages.create(model="claude-test", max_tokens=50, messages=OPENAI_MESSAGES)
    [row] = await daemon.usage_rows()
    assert row["status"] == 200 and row["estimated"] == 1
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


async def test_embeddings_without_usage_are_estimated(gw):
    daemon, standin, key = gw
    standin.no_usage()
    async with openai_client(daemon, key) as client:
        await client.embeddings.create(model="embed-test", input="some words to embed", encoding_format="float")
    [row] = await daemon.usage_rows()
    assert row["estimated"] == 1 and row["prompt_tokens"] > 0


# -- client disconnects -----------------------------------------------------------------------


async def test_client_disconnect_mid_stream_is_metered_as_499(gw):
    daemon, standin, key = gw
    standin.stream_delay = 0.03
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "a long answer please"}], stream=True
        )
        seen = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += 1
                if seen == 2:
                    break
        await stream.close()
    rows = await wait_for_rows(daemon, 1)
    [row] = rows
    assert row["status"] == 499 and row["stream"] == 1
    assert row["estimated"] == 1 and row["prompt_tokens"] > 0
    full = len(reply_text("a long answer please").split(" "))
    assert 2 <= row["completion_tokens"] < full + 2
    assert not standin.last.completed, "the gateway should stop pulling tokens from the upstream once its client left"
    # the daemon keeps serving
    standin.reset()
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    assert reply.choices[0].message.content == reply_text("hello")
    rows = await daemon.usage_rows()
    assert [r["status"] for r in rows] == [499, 200]


async def test_anthropic_client_disconnect_mid_stream_is_metered_as_499(gw):
    daemon, standin, key = gw
    standin.stream_delay = 0.03
    async with anthropic_client(daemon, key) as client:
        stream = await client.messages.create(
            model="claude-test", max_tokens=99, messages=[{"role": "user", "content": "a long answer please"}], stream=True
        )
        deltas = 0
        async for event in stream:
            if event.type == "content_block_delta":
                deltas += 1
                if deltas == 3:
                    break
        await stream.close()
    [row] = await wait_for_rows(daemon, 1)
    assert row["status"] == 499 and row["stream"] == 1
    assert row["prompt_tokens"] == standin.last.usage[0]
    assert row["completion_tokens"] >= 3 and row["estimated"] == 1


async def test_client_gone_while_upstream_is_silent_is_still_metered(standin, start_daemon):
    """A client that hangs up while the upstream has not answered yet is metered once the call ends."""
    daemon = await start_daemon(standin_config(standin, first_byte_timeout=0.5))
    key = await daemon.create_key("gone@example.com")
    standin.hang()
    async with openai_client(daemon, key, timeout=0.1) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    rows = await wait_for_rows(daemon, 1, timeout=3)
    assert len(rows) == 1 and rows[0]["status"] in (499, 504)
    standin.reset()
    async with openai_client(daemon, key) as client:
        await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    await asyncio.sleep(0)
    assert [r["status"] for r in await daemon.usage_rows()][-1] == 200


# -- a fault inside the gateway ----------------------------------------------------------------


async def test_an_internal_fault_is_a_shaped_500_metered_and_logged_without_content(gw, monkeypatch, caplog):
    """A bug of ours still answers in the caller's API shape, meters the call, and logs no content
    (an exception's message may quote the request, as a KeyError does)."""
    daemon, standin, key = gw
    secret = "CANARY-inside-an-exception-message"

    def broken(*_args, **_kwargs):
        raise KeyError(f"no field {secret}")

    monkeypatch.setattr(daemon.app[PROXY], "may_use", broken)
    caplog.set_level(logging.DEBUG)
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    openai_error(caught.value, 500, type_="server_error", code="internal_error")
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.InternalServerError) as caught_a:
            await client.messages.create(model="claude-test", max_tokens=5, messages=OPENAI_MESSAGES)
    anthropic_error(caught_a.value, 500, "api_error")
    assert secret not in caught.value.response.text
    await last_row(daemon, 500, count=2)
    daemon_logs = [r for r in caplog.records if not r.name.startswith(("openai", "anthropic", "httpx", "httpcore"))]
    assert any("KeyError" in r.getMessage() for r in daemon_logs), "the fault is logged, by its type"
    for record in daemon_logs:
        assert secret not in f"{record.getMessage()} {record.exc_text or ''}"
