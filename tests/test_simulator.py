"""The built-in simulator through the gateway: every endpoint answers, metered, and it cannot be made to blow up."""

from __future__ import annotations

import time

import openai
import pytest
from gateway_helpers import anthropic_client, openai_client, tokens


async def test_every_endpoint_answers_and_is_metered(daemon):
    key = await daemon.create_key("sim@example.com")
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
        assert "[NoorAPI simulator]" in reply.choices[0].message.content
        stream = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert all(c.usage is None for c in [c async for c in stream])
        await client.embeddings.create(model="sim-embed", input=["a", "b"])
        await client.responses.create(model="sim-gpt", input="hi")
    async with anthropic_client(daemon, key) as client:
        await client.messages.create(model="sim-claude", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    rows = await daemon.usage_rows()
    assert [r["status"] for r in rows] == [200] * 5
    assert all(r["estimated"] == 0 and r["prompt_tokens"] > 0 for r in rows)
    assert rows[0]["completion_tokens"] > 0 and rows[1]["stream"] == 1
    assert tokens(rows[0]) == (reply.usage.prompt_tokens, reply.usage.completion_tokens)


@pytest.mark.parametrize(
    "options, param",
    [
        ({"dimensions": 10**8}, "dimensions"),
        ({"dimensions": 0}, "dimensions"),
        ({"input": ["x"] * 5000}, "input"),
    ],
)
async def test_embedding_requests_beyond_openai_limits_are_400_not_a_stall(daemon, options, param):
    key = await daemon.create_key("sim@example.com")
    started = time.monotonic()
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(**{"model": "sim-embed", "input": "x", "encoding_format": "float", **options})
    assert time.monotonic() - started < 2
    assert caught.value.body["param"] == param
    rows = await daemon.usage_rows()
    assert rows[-1]["status"] == 400 and tokens(rows[-1]) == (0, 0)
