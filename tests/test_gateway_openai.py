"""The OpenAI-compatible endpoints, driven by the real `openai` SDK through the daemon to the stand-in.

Every call's tokens must land in the ledger exactly as the upstream reported them.
"""

from __future__ import annotations

import asyncio
import base64
import struct

import aiohttp
import pytest
from gateway_helpers import anthropic_client, openai_client, tokens
from standin_upstream import UPSTREAM_OPENAI_SECRET, reply_text, standin_config

from noor_daemon.state import LEDGER

pytestmark = pytest.mark.engine_independent


@pytest.fixture
async def gw(standin, start_daemon):
    """(daemon, stand-in, key) with the daemon routing test models to the stand-in."""
    daemon = await start_daemon(standin_config(standin))
    key = await daemon.create_key("openai-user@example.com")
    return daemon, standin, key


def assert_row(row: dict, *, endpoint: str, model: str, usage: tuple[int, int], stream: bool, status: int = 200) -> None:
    assert row["endpoint"] == endpoint
    assert row["model"] == model
    assert row["status"] == status
    assert tokens(row) == usage
    assert row["stream"] == int(stream)
    assert row["estimated"] == 0
    assert row["key_id"] and row["account_id"]
    assert row["latency_ms"] > 0


async def test_chat_non_streaming(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there gateway"}],
        )
    assert reply.choices[0].message.content == reply_text("hello there gateway")
    sent = standin.last
    assert sent.body["model"] == "standin-gpt"  # the route's upstream name, not the client's
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_OPENAI_SECRET}"
    assert all(key not in value for value in sent.headers.values()), "the caller's NoorAPI key leaked upstream"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == sent.usage
    [row] = await daemon.usage_rows()
    assert_row(row, endpoint="chat/completions", model="gpt-test", usage=sent.usage, stream=False)
    assert row["provider"] == "standin-openai"


async def test_chat_streaming_without_include_usage_hides_usage_but_meters_it(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "stream me please"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_text("stream me please")
    assert all(c.usage is None for c in chunks), "the client did not ask for usage and must not get it"
    assert all(c.choices for c in chunks), "the usage-only chunk (empty choices) must be stripped"
    sent = standin.last
    assert sent.body["stream_options"] == {"include_usage": True}, "the gateway must ask upstream for usage"
    assert sent.usage is not None
    [row] = await daemon.usage_rows()
    assert_row(row, endpoint="chat/completions", model="gpt-test", usage=sent.usage, stream=True)
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]


async def test_chat_streaming_with_include_usage_passes_usage_chunk(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "count my tokens"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0].choices == [] and chunks[-1] is with_usage[0]
    usage = with_usage[0].usage
    sent = standin.last
    assert (usage.prompt_tokens, usage.completion_tokens) == sent.usage
    [row] = await daemon.usage_rows()
    assert_row(row, endpoint="chat/completions", model="gpt-test", usage=sent.usage, stream=True)


async def test_stream_is_passed_through_as_it_arrives(gw):
    """No buffering: the client has its first token while the upstream is still writing."""
    daemon, standin, key = gw
    standin.stream_delay = 0.05
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "slowly"}], stream=True
        )
        first_text = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first_text = chunk.choices[0].delta.content
                assert not standin.last.completed, "the whole upstream answer was buffered before the first token"
                break
        assert first_text
        async for _ in stream:
            pass
    assert standin.last.completed


@pytest.mark.parametrize("stream", [False, True])
async def test_legacy_completions(gw, stream):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        if stream:
            result = await client.completions.create(model="gpt-test", prompt="complete this line", stream=True)
            parts = [c async for c in result]
            assert all(c.usage is None for c in parts)
            text = "".join(c.choices[0].text for c in parts if c.choices)
        else:
            result = await client.completions.create(model="gpt-test", prompt="complete this line")
            text = result.choices[0].text
            assert (result.usage.prompt_tokens, result.usage.completion_tokens) == standin.last.usage
    assert text == reply_text("complete this line")
    assert standin.last.usage is not None
    [row] = await daemon.usage_rows()
    assert_row(row, endpoint="completions", model="gpt-test", usage=standin.last.usage, stream=stream)


@pytest.mark.parametrize("encoding", ["float", None])
async def test_embeddings(gw, encoding):
    daemon, standin, key = gw
    inputs = ["first text to embed", "second one"]
    async with openai_client(daemon, key) as client:
        if encoding:
            result = await client.embeddings.create(model="embed-test", input=inputs, encoding_format=encoding)
        else:  # the SDK's default asks for base64 and decodes it
            result = await client.embeddings.create(model="embed-test", input=inputs)
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert standin.last.body["model"] == "standin-embed"
    assert standin.last.body["encoding_format"] == (encoding or "base64")
    expected = standin.last.usage
    assert expected == (6, 0)
    assert result.usage.prompt_tokens == 6
    [row] = await daemon.usage_rows()
    assert_row(row, endpoint="embeddings", model="embed-test", usage=expected, stream=False)


async def test_embeddings_are_passed_through_byte_for_byte(gw):
    """The gateway forwards the upstream body unchanged (base64 vectors and all)."""
    daemon, standin, key = gw
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{daemon.base_url}/embeddings",
            json={"model": "embed-test", "input": "abc", "encoding_format": "base64"},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            assert response.status == 200
            body = await response.json()
    vector = struct.unpack("<8f", base64.b64decode(body["data"][0]["embedding"]))
    assert len(vector) == 8
    assert body["usage"] == {"prompt_tokens": 1, "total_tokens": 1}


async def test_responses_non_streaming(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        result = await client.responses.create(model="gpt-test", input="responses api here", instructions="short")
    assert result.output_text == reply_text("responses api here")
    sent = standin.last
    assert (result.usage.input_tokens, result.usage.output_tokens) == sent.usage
    [row] = await daemon.usage_rows()
    assert_row(row, endpoint="responses", model="gpt-test", usage=sent.usage, stream=False)


async def test_responses_streaming(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        stream = await client.responses.create(
            model="gpt-test", input=[{"role": "user", "content": "stream the responses api"}], stream=True
        )
        events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == reply_text("stream the responses api")
    final = events[-1].response.usage
    sent = standin.last
    assert (final.input_tokens, final.output_tokens) == sent.usage
    [row] = await daemon.usage_rows()
    assert_row(row, endpoint="responses", model="gpt-test", usage=sent.usage, stream=True)


async def test_models_lists_only_what_the_key_may_use(standin, start_daemon):
    daemon = await start_daemon(standin_config(standin))
    narrow = await daemon.create_key("models@example.com", allowed_models=["gpt-test", "claude-test"])
    wide = await daemon.create_key("models@example.com")
    async with openai_client(daemon, narrow) as client:
        assert sorted(m.id for m in (await client.models.list()).data) == ["claude-test", "gpt-test"]
    async with openai_client(daemon, wide) as client:
        assert sorted(m.id for m in (await client.models.list()).data) == [
            "claude-test",
            "embed-test",
            "gpt-test",
            "gpt-test-mini",
        ]
    async with anthropic_client(daemon, narrow) as client:  # Anthropic's shape when the SDK asks
        page = await client.models.list()
        assert sorted(m.id for m in page.data) == ["claude-test", "gpt-test"]
        assert all(m.type == "model" for m in page.data)
    assert standin.requests == [], "listing models is answered by the gateway itself"


async def test_key_in_x_api_key_header_works_on_openai_endpoints(gw):
    daemon, standin, key = gw
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{daemon.base_url}/chat/completions",
            json={"model": "gpt-test", "messages": [{"role": "user", "content": "via x-api-key"}]},
            headers={"x-api-key": key},
        ) as response:
            assert response.status == 200
            body = await response.json()
    assert body["choices"][0]["message"]["content"] == reply_text("via x-api-key")
    [row] = await daemon.usage_rows()
    assert tokens(row) == standin.last.usage


async def test_concurrent_calls_each_land_exactly_once(gw):
    """Many calls at once share group commits; every one has its own exact row."""
    daemon, standin, key = gw

    async def one(client, i: int):
        words = " ".join(["word"] * (i + 1))
        if i % 3 == 0:
            s = await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": words}], stream=True)
            async for _ in s:
                pass
        elif i % 3 == 1:
            await client.chat.completions.create(model="gpt-test-mini", messages=[{"role": "user", "content": words}])
        else:
            await client.embeddings.create(model="embed-test", input=words, encoding_format="float")

    async with openai_client(daemon, key) as client:
        await asyncio.gather(*(one(client, i) for i in range(24)))
    rows = await daemon.usage_rows()
    assert len(rows) == 24 == len(standin.requests)
    assert all(r["status"] == 200 and r["estimated"] == 0 for r in rows)
    assert sorted(tokens(r) for r in rows) == sorted(s.usage for s in standin.requests)
    assert sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) == sum(sum(s.usage) for s in standin.requests)
    hourly = await daemon.app[LEDGER].fetchall(
        "SELECT SUM(requests), SUM(prompt_tokens), SUM(completion_tokens) FROM usage_hourly"
    )
    assert tuple(hourly[0]) == (24, sum(r["prompt_tokens"] for r in rows), sum(r["completion_tokens"] for r in rows))
