"""The built-in simulator through the gateway: every endpoint answers, metered, and it cannot be made to blow up."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest
from gateway_helpers import anthropic_client, openai_client, tokens

pytestmark = pytest.mark.engine_independent


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


# -- the simulator speaks each format as the real APIs do ------------------------------------------

BASH = {"name": "Bash", "description": "Run a command", "input_schema": {
    "type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]}}
READ = {"name": "Read", "description": "Read a file", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}


def chat_tool(tool: dict) -> dict:
    return {"type": "function", "function": {"name": tool["name"], "description": tool["description"], "parameters": tool["input_schema"]}}


async def test_simulator_calls_the_tool_the_user_named_then_answers_its_result(daemon):
    key = await daemon.create_key("sim@example.com")
    prompt = "Use the Bash tool to run `ls -la`"
    async with anthropic_client(daemon, key) as client:
        async with client.messages.stream(model="sim-claude", max_tokens=200, tools=[READ, BASH],
                                          messages=[{"role": "user", "content": prompt}]) as stream:
            kinds = [event.type async for event in stream]
            first = await stream.get_final_message()
        assert first.stop_reason == "tool_use" and [b.type for b in first.content] == ["tool_use"]
        assert (first.content[0].name, first.content[0].input) == ("Bash", {"command": "ls -la"})
        assert "content_block_delta" in kinds  # the input streamed as input_json_delta pieces
        after = await client.messages.create(model="sim-claude", max_tokens=200, tools=[READ, BASH], messages=[
            {"role": "user", "content": prompt}, {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[0].id, "content": "total 0"}]}])
        assert after.stop_reason == "end_turn" and after.content[0].text.startswith("[NoorAPI simulator] The tool answered.")
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(model="sim-gpt", tools=[chat_tool(READ), chat_tool(BASH)],
                                                     messages=[{"role": "user", "content": "Read `notes.md` please"}])
        [call] = reply.choices[0].message.tool_calls
        assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "Read"
        assert call.function.arguments == '{"path":"notes.md"}'
        forced = await client.chat.completions.create(model="sim-gpt", tools=[chat_tool(READ), chat_tool(BASH)],
                                                      tool_choice={"type": "function", "function": {"name": "Bash"}},
                                                      messages=[{"role": "user", "content": "hello"}])
        assert forced.choices[0].message.tool_calls[0].function.name == "Bash"
        none = await client.chat.completions.create(model="sim-gpt", tools=[chat_tool(BASH)], tool_choice="none",
                                                    messages=[{"role": "user", "content": "Bash `ls`"}])
        assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"
        async with client.chat.completions.stream(model="sim-gpt", tools=[chat_tool(READ), chat_tool(BASH)],
                                                  messages=[{"role": "user", "content": "Use Read on `a` and Bash for `b`"}]) as stream:
            parallel = await stream.get_final_completion()
        assert [(c.function.name, c.function.arguments) for c in parallel.choices[0].message.tool_calls] == [
            ("Read", '{"path":"a"}'), ("Bash", '{"command":"b"}')]
    rows = await daemon.usage_rows()
    assert len(rows) == 6 and all(r["status"] == 200 and r["estimated"] == 0 for r in rows)


async def test_simulator_speaks_the_full_responses_sequence(daemon):
    key = await daemon.create_key("sim@example.com")
    tool = {"type": "function", "name": "exec_command", "parameters": {
        "type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}
    async with openai_client(daemon, key) as client:
        async with client.responses.stream(model="sim-gpt", input="hi") as stream:
            kinds = [event.type async for event in stream]
            text = await stream.get_final_response()
        async with client.responses.stream(model="sim-gpt", input="run `echo hi`", tools=[tool]) as stream:
            calls = await stream.get_final_response()
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    assert text.output_text.startswith("[NoorAPI simulator]") and text.usage.output_tokens > 0
    [call] = calls.output
    assert (call.type, call.name, call.arguments) == ("function_call", "exec_command", '{"cmd":"echo hi"}')


async def test_simulator_refuses_what_the_real_apis_refuse(daemon):
    key = await daemon.create_key("sim@example.com")
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.BadRequestError) as not_a_list:
            await client.post("/chat/completions", body={"model": "sim-gpt", "messages": "hello"}, cast_to=object)
        with pytest.raises(openai.BadRequestError) as not_an_embedder:
            await client.embeddings.create(model="sim-gpt", input="x")
        with pytest.raises(openai.NotFoundError) as not_a_chat_model:
            await client.chat.completions.create(model="sim-embed", messages=[{"role": "user", "content": "hi"}])
    assert not_a_list.value.body["param"] == "messages" and not_a_list.value.body["type"] == "invalid_request_error"
    assert not_an_embedder.value.body["param"] == "model"
    assert not_a_chat_model.value.body["code"] == "model_not_supported"
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.BadRequestError) as no_max_tokens:
            await client.post("/v1/messages", body={"model": "sim-claude", "messages": [{"role": "user", "content": "hi"}]},
                              cast_to=object)
    assert no_max_tokens.value.body == {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}
    rows = await daemon.usage_rows()
    assert [r["status"] for r in rows] == [400, 400, 404, 400] and all(tokens(r) == (0, 0) for r in rows)


async def test_simulator_stops_at_max_tokens_as_the_apis_say(daemon):
    key = await daemon.create_key("sim@example.com")
    async with anthropic_client(daemon, key) as client:
        message = await client.messages.create(model="sim-claude", max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(model="sim-gpt", max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3
    assert reply.choices[0].finish_reason == "length"
