"""The Anthropic-compatible endpoints, driven by the real `anthropic` SDK through the daemon to the stand-in."""

from __future__ import annotations

import pytest
from gateway_helpers import anthropic_client, tokens
from standin_upstream import UPSTREAM_ANTHROPIC_SECRET, reply_text, standin_config

pytestmark = pytest.mark.engine_independent


@pytest.fixture
async def gw(standin, start_daemon):
    daemon = await start_daemon(standin_config(standin))
    key = await daemon.create_key("anthropic-user@example.com")
    return daemon, standin, key


async def test_messages_non_streaming(gw):
    daemon, standin, key = gw
    async with anthropic_client(daemon, key) as client:
        client_version = client.default_headers["anthropic-version"]
        message = await client.messages.create(
            model="claude-test",
            max_tokens=100,
            system="be kind",
            messages=[{"role": "user", "content": "hello claude gateway"}],
        )
    assert message.content[0].text == reply_text("hello claude gateway")
    sent = standin.last
    assert sent.path == "/v1/messages"
    assert sent.body["model"] == "standin-claude"
    assert sent.headers["x-api-key"] == UPSTREAM_ANTHROPIC_SECRET
    assert sent.headers["anthropic-version"] == client_version  # the SDK's header is passed on
    assert "Authorization" not in sent.headers
    assert all(key not in value for value in sent.headers.values()), "the caller's NoorAPI key leaked upstream"
    assert (message.usage.input_tokens, message.usage.output_tokens) == sent.usage
    [row] = await daemon.usage_rows()
    assert row["endpoint"] == "messages" and row["model"] == "claude-test" and row["provider"] == "standin-anthropic"
    assert row["status"] == 200 and row["stream"] == 0 and row["estimated"] == 0
    assert tokens(row) == sent.usage


async def test_messages_streaming(gw):
    daemon, standin, key = gw
    async with anthropic_client(daemon, key) as client:
        async with client.messages.stream(
            model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "stream claude please"}]
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
    assert text == reply_text("stream claude please")
    sent = standin.last
    assert (final.usage.input_tokens, final.usage.output_tokens) == sent.usage
    [row] = await daemon.usage_rows()
    assert row["endpoint"] == "messages" and row["status"] == 200 and row["stream"] == 1 and row["estimated"] == 0
    assert tokens(row) == sent.usage
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]


async def test_messages_raw_event_stream_is_complete(gw):
    """With `stream=True` the SDK yields every event; the gateway passes the whole sequence on."""
    daemon, standin, key = gw
    async with anthropic_client(daemon, key) as client:
        stream = await client.messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "raw events"}], stream=True
        )
        kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == len(reply_text("raw events").split(" "))
    [row] = await daemon.usage_rows()
    assert tokens(row) == standin.last.usage


async def test_count_tokens(gw):
    daemon, standin, key = gw
    async with anthropic_client(daemon, key) as client:
        counted = await client.messages.count_tokens(
            model="claude-test", messages=[{"role": "user", "content": "how many tokens is this"}]
        )
    assert counted.input_tokens == 5 + 4
    assert standin.last.path == "/v1/messages/count_tokens"
    assert standin.last.body["model"] == "standin-claude"
    [row] = await daemon.usage_rows()
    assert row["endpoint"] == "messages/count_tokens" and row["status"] == 200
    assert tokens(row) == (0, 0), "counting tokens consumes none"
    assert row["estimated"] == 0


async def test_bearer_auth_works_on_anthropic_endpoints(gw):
    """Keys arrive as `x-api-key` or `Authorization: Bearer`, on either API."""
    daemon, standin, key = gw
    async with anthropic_client(daemon, None, auth_token=key) as client:
        message = await client.messages.create(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "bearer"}]
        )
    assert message.content[0].text == reply_text("bearer")
    [row] = await daemon.usage_rows()
    assert row["key_id"] and tokens(row) == standin.last.usage
