"""Translation end to end: the real `anthropic` and `openai` SDKs through the daemon to stand-in providers that
speak another format (a chat-only OpenAI-kind server, an Anthropic-kind one), with tools and streaming.

Each call is checked on both sides: what the caller's SDK makes of the answer, what the provider was sent,
and the usage row (the provider's own tokens, metered once).
"""

from __future__ import annotations

import anthropic
import openai
import orjson
import pytest
from gateway_helpers import anthropic_client, openai_client, tokens, wait_for_rows
from standin_upstream import (
    ANTHROPIC_KEY_ENV,
    OPENAI_KEY_ENV,
    UPSTREAM_ANTHROPIC_SECRET,
    UPSTREAM_OPENAI_SECRET,
    Script,
    reply_text,
)

pytestmark = pytest.mark.engine_independent

IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_FUNCTION = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                                     "parameters": WEATHER["input_schema"]}}
WEATHER_RESPONSES = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                     "parameters": WEATHER["input_schema"]}


def config(standin) -> str:
    return f"""
[[providers]]
name = "chat-only"
kind = "openai"
formats = ["chat"]
base_url = "{standin.openai_base}"
api_key = "env:{OPENAI_KEY_ENV}"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{standin.url}"
api_key = "env:{ANTHROPIC_KEY_ENV}"

[[providers]]
name = "local"
kind = "vllm"
base_url = "{standin.openai_base}"

[[models]]
name = "gpt-x"
routes = [{{ provider = "chat-only", model = "standin-gpt" }}]

[[models]]
name = "claude-x"
routes = [{{ provider = "claude", model = "standin-claude" }}]

[[models]]
name = "qwen-local"
routes = [{{ provider = "local", model = "standin-qwen" }}]
"""


@pytest.fixture
async def gw(standin, start_daemon):
    daemon = await start_daemon(config(standin))
    key = await daemon.create_key("translate@example.com")
    return daemon, standin, key


def upstream_calls(standin, path: str) -> list:
    return [r for r in standin.requests if r.path == path]


async def metered(daemon, count: int) -> list[dict]:
    rows = await wait_for_rows(daemon, count)
    assert len(rows) == count, rows
    return rows


# -- Anthropic SDK → an OpenAI-kind provider (Claude Code → GPT, or a local model) --------------


async def test_anthropic_sdk_tool_loop_streamed_to_a_chat_provider(gw):
    daemon, standin, key = gw
    async with anthropic_client(daemon, key) as client:
        async with client.messages.stream(
            model="gpt-x", max_tokens=200, system="You are terse.", tools=[WEATHER],
            messages=[{"role": "user", "content": "Use get_weather for `Paris`"}],
        ) as stream:
            kinds = [event.type async for event in stream]
            first = await stream.get_final_message()
        assert first.stop_reason == "tool_use"
        [call] = [b for b in first.content if b.type == "tool_use"]
        assert call.name == "get_weather" and call.input == {"city": "Paris"}  # arguments whole, from streamed pieces
        assert kinds[0] == "message_start" and kinds.count("message_start") == 1 and kinds[-1] == "message_stop"
        sent = upstream_calls(standin, "/v1/chat/completions")[-1].body
        assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
        assert sent["tools"] == [WEATHER_FUNCTION] and sent["stream_options"] == {"include_usage": True}
        reported = [standin.last.usage]
        # the tool's result goes back; the provider answers in words
        second = await client.messages.create(
            model="gpt-x", max_tokens=200, tools=[WEATHER],
            messages=[{"role": "user", "content": "Use get_weather for `Paris`"},
                      {"role": "assistant", "content": first.content},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]}],
        )
        reported.append(standin.last.usage)
    sent = standin.last.body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    rows = await metered(daemon, 2)
    assert [(r["endpoint"], r["provider"], r["status"], r["estimated"]) for r in rows] == [("messages", "chat-only", 200, 0)] * 2
    assert [tokens(r) for r in rows] == reported  # the provider's own count, once each
    assert (first.usage.input_tokens, first.usage.output_tokens) == reported[0]


async def test_anthropic_stream_ends_with_the_non_streamed_message(gw):
    daemon, standin, key = gw
    standin.script(Script(text="Here you go.", reasoning="Two calls are needed.", calls=[("get_weather", {"city": "Oslo"}),
                                                                                          ("get_weather", {"city": "Rome"})],
                          cached_tokens=2))
    request = {"model": "gpt-x", "max_tokens": 300, "tools": [WEATHER], "messages": [{"role": "user", "content": "weather twice"}]}
    async with anthropic_client(daemon, key) as client:
        whole = await client.messages.create(**request)
        async with client.messages.stream(**request) as stream:
            streamed = await stream.get_final_message()
    assert [b.type for b in whole.content] == ["thinking", "text", "tool_use", "tool_use"]  # parallel calls
    assert whole.content[0].thinking == "Two calls are needed." and whole.content[3].input == {"city": "Rome"}
    assert whole.usage.cache_read_input_tokens == 2
    assert streamed.model_dump(exclude={"id"}) == whole.model_dump(exclude={"id"})
    rows = await metered(daemon, 2)
    assert tokens(rows[0]) == tokens(rows[1]) == standin.last.usage


async def test_anthropic_request_features_reach_a_chat_provider(gw):
    daemon, standin, key = gw
    standin.script(Script(text="Once upon", stop="length"))
    async with anthropic_client(daemon, key) as client:
        message = await client.messages.create(
            model="gpt-x", max_tokens=7, stop_sequences=["THE END"], extra_body={"temperature": 0.3, "top_p": 0.8},
            system=[{"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}],
            thinking={"type": "enabled", "budget_tokens": 2000},
            output_config={"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Look"},
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE}},
                                             {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
                {"role": "assistant", "content": "I see"},
                {"role": "user", "content": "Tell a story"},
            ],
        )
    assert message.stop_reason == "max_tokens" and message.content[0].text == "Once upon"
    sent = standin.last.body
    assert sent["max_completion_tokens"] == 7 and sent["temperature"] == 0.3 and sent["top_p"] == 0.8
    assert sent["stop"] == ["THE END"] and sent["reasoning_effort"] == "low"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}
    assert sent["messages"][1]["content"][2] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]


async def test_anthropic_field_without_counterpart_is_a_400_naming_it(gw):
    daemon, standin, key = gw
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="gpt-x", max_tokens=10, extra_body={"top_k": 5}, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "invalid_request_error" and "`top_k`" in caught.value.body["error"]["message"]
    assert not standin.requests, "nothing was sent"
    [row] = await metered(daemon, 1)
    assert row["status"] == 400 and tokens(row) == (0, 0)


async def test_count_tokens_answers_for_every_model(gw):
    daemon, standin, key = gw
    messages = [{"role": "user", "content": "how many tokens is this sentence here"}]
    async with anthropic_client(daemon, key) as client:
        native = await client.messages.count_tokens(model="claude-x", messages=messages)
        raw = await client.messages.with_raw_response.count_tokens(model="gpt-x", messages=messages)
        estimated = await raw.parse()
    assert native.input_tokens == 7 + 4 and upstream_calls(standin, "/v1/messages/count_tokens")  # the provider's own count
    assert estimated.input_tokens > 0 and raw.headers["x-noor-estimated"] == "true"
    assert estimated.model_extra == {"estimated": True}
    rows = await metered(daemon, 2)
    assert [(r["status"], r["estimated"], tokens(r)) for r in rows] == [(200, 0, (0, 0)), (200, 1, (0, 0))]


# -- OpenAI SDK → an Anthropic-kind provider (an editor or script → Claude) ----------------------


async def test_openai_sdk_tools_streamed_to_an_anthropic_provider(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        async with client.chat.completions.stream(
            model="claude-x", tools=[WEATHER_FUNCTION], tool_choice="required", parallel_tool_calls=False,
            messages=[{"role": "developer", "content": "terse"}, {"role": "user", "content": "Use get_weather for `Lima`"}],
        ) as stream:
            final = await stream.get_final_completion()
        message = final.choices[0].message
        assert final.choices[0].finish_reason == "tool_calls"
        [call] = message.tool_calls
        assert call.function.name == "get_weather" and call.function.parsed_arguments is None
        assert call.function.arguments.replace(" ", "") == '{"city":"Lima"}'
        sent = standin.last.body
        assert sent["system"] == "terse" and sent["tools"][0]["input_schema"] == WEATHER["input_schema"]
        assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True} and sent["max_tokens"] == 4096
        assert standin.last.headers["x-api-key"] == UPSTREAM_ANTHROPIC_SECRET
        reply = await client.chat.completions.create(
            model="claude-x", tools=[WEATHER_FUNCTION],
            messages=[{"role": "user", "content": "Use get_weather for `Lima`"}, message.model_dump(exclude_none=True),
                      {"role": "tool", "tool_call_id": call.id, "content": "22C"}],
        )
    result = standin.last.body["messages"][-1]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": call.id, "content": [{"type": "text", "text": "22C"}]}
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.content
    rows = await metered(daemon, 2)
    assert all(r["endpoint"] == "chat/completions" and r["provider"] == "claude" and r["estimated"] == 0 for r in rows)
    assert tokens(rows[1]) == standin.last.usage == (reply.usage.prompt_tokens, reply.usage.completion_tokens)


async def test_openai_chat_stream_ends_with_the_non_streamed_completion(gw):
    daemon, standin, key = gw
    standin.script(Script(text="Sure.", reasoning="Think first.", calls=[("get_weather", {"city": "Kyiv"})], cached_tokens=3))
    request = {"model": "claude-x", "tools": [WEATHER_FUNCTION], "messages": [{"role": "user", "content": "weather"}]}
    async with openai_client(daemon, key) as client:
        whole = await client.chat.completions.create(**request)
        async with client.chat.completions.stream(**request, stream_options={"include_usage": True}) as stream:
            streamed = await stream.get_final_completion()
    a, b = whole.choices[0], streamed.choices[0]
    assert (a.message.content, a.finish_reason) == (b.message.content, b.finish_reason) == ("Sure.", "tool_calls")
    assert [(c.id, c.function.name) for c in a.message.tool_calls] == [(c.id, c.function.name) for c in b.message.tool_calls]
    assert a.message.model_extra["reasoning_content"] == b.message.model_extra["reasoning_content"] == "Think first."
    assert whole.usage.prompt_tokens_details.cached_tokens == 3 and whole.usage == streamed.usage


async def test_openai_fields_without_counterpart_are_400s_naming_them(gw):
    daemon, standin, key = gw
    async with openai_client(daemon, key) as client:
        for options, param in (({"n": 2}, "n"), ({"response_format": {"type": "json_object"}}, "response_format"),
                               ({"logit_bias": {"50256": -100}}, "logit_bias"), ({"temperature": 1.7}, "temperature")):
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "hi"}], **options)
            assert caught.value.body["param"] == param and caught.value.body["code"] == "untranslatable_field"
    assert not standin.requests
    rows = await metered(daemon, 4)
    assert {r["status"] for r in rows} == {400}


# -- Responses → both kinds (Codex → Claude, Codex → a chat-only local model) ---------------------


@pytest.mark.parametrize("model, path", [("claude-x", "/v1/messages"), ("gpt-x", "/v1/chat/completions")])
async def test_responses_stream_with_tools_ends_with_the_non_streamed_response(gw, model, path):
    daemon, standin, key = gw
    standin.script(Script(text="Checking.", calls=[("get_weather", {"city": "Accra"})]))
    request = {"model": model, "input": "weather please", "instructions": "Be brief.", "tools": [WEATHER_RESPONSES]}
    async with openai_client(daemon, key) as client:
        whole = await client.responses.create(**request)
        async with client.responses.stream(**request) as stream:
            kinds = [event.type async for event in stream]
            streamed = await stream.get_final_response()
    assert [item.type for item in whole.output] == ["message", "function_call"]
    assert whole.output[1].name == "get_weather" and whole.output[1].arguments.replace(" ", "") == '{"city":"Accra"}'
    strip = {"id": True, "created_at": True, "output": True}
    assert streamed.model_dump(exclude=strip) == whole.model_dump(exclude=strip)
    assert streamed.output_text == whole.output_text == "Checking."
    assert [(i.call_id, i.name, orjson.loads(i.arguments), i.status) for i in streamed.output[1:]] == [
        (i.call_id, i.name, orjson.loads(i.arguments), i.status) for i in whole.output[1:]]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 2
    assert [r.path for r in standin.requests] == [path, path]
    rows = await metered(daemon, 2)
    assert all(r["endpoint"] == "responses" and r["estimated"] == 0 for r in rows)
    assert tokens(rows[1]) == standin.last.usage == (streamed.usage.input_tokens, streamed.usage.output_tokens)


async def test_responses_reasoning_signature_goes_back_to_anthropic(gw):
    """Codex sends reasoning items back (store=false, include encrypted content): Anthropic gets its signed thinking."""
    daemon, standin, key = gw
    standin.script(Script(reasoning="Plan: call the tool.", calls=[("get_weather", {"city": "Cairo"})], signature="sig-xyz"))
    async with openai_client(daemon, key) as client:
        first = await client.responses.create(model="claude-x", input="weather", tools=[WEATHER_RESPONSES], store=False,
                                              include=["reasoning.encrypted_content"])
        reasoning, call = first.output
        assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Plan: call the tool."
        standin.script(None)
        await client.responses.create(
            model="claude-x", tools=[WEATHER_RESPONSES], store=False, include=["reasoning.encrypted_content"],
            input=[{"role": "user", "content": "weather"}, reasoning.model_dump(exclude_none=True), call.model_dump(exclude_none=True),
                   {"type": "function_call_output", "call_id": call.call_id, "output": "30C"}],
        )
    assistant = standin.last.body["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "Plan: call the tool.", "signature": "sig-xyz"}
    assert assistant[1]["type"] == "tool_use" and assistant[1]["id"] == call.call_id


async def test_responses_namespaced_tools_and_hosted_tools(gw):
    daemon, standin, key = gw
    standin.script(Script(calls=[("agents__close_agent", {"id": "a1"})]))
    tools = [{"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [
        {"type": "function", "name": "close_agent", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}]}]
    async with openai_client(daemon, key) as client:
        response = await client.post("/responses", body={"model": "gpt-x", "input": "close a1", "tools": tools}, cast_to=object)
        assert standin.last.body["tools"][0]["function"]["name"] == "agents__close_agent"
        [call] = response["output"]
        assert (call["name"], call["namespace"]) == ("close_agent", "agents")
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="gpt-x", input="hi", tools=[{"type": "web_search"}])
    assert caught.value.body["param"] == "tools[0]" and "web_search" in caught.value.body["message"]


# -- provider errors in the caller's shape ------------------------------------------------------


async def test_provider_errors_reach_the_caller_in_its_shape_redacted(gw):
    daemon, standin, key = gw
    leak = f"bad key {UPSTREAM_OPENAI_SECRET} and sk-proj-{'A' * 30}"
    standin.fail(429, f"Slow down: {leak}", headers={"retry-after": "3"}, extra={"debug": "raw provider dump"})
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model="gpt-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error" and set(error["error"]) == {"type", "message"}
    assert UPSTREAM_OPENAI_SECRET not in str(error) and "AAAAAAAAAA" not in str(error) and "Slow down" in str(error)
    assert caught.value.response.headers["retry-after"] == "3"
    standin.fail(529, f"Overloaded {UPSTREAM_ANTHROPIC_SECRET}")
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.APIStatusError) as caught_o:
            await client.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "hi"}])
    assert caught_o.value.status_code == 529 and set(caught_o.value.body) == {"message", "type", "param", "code"}
    assert UPSTREAM_ANTHROPIC_SECRET not in str(caught_o.value.body) and caught_o.value.body["type"] == "server_error"


async def test_mid_stream_provider_error_ends_the_translated_stream_in_the_callers_shape(gw):
    daemon, standin, key = gw
    standin.error_mid_stream(after=3, status=529, message=f"Overloaded {UPSTREAM_ANTHROPIC_SECRET}")
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "a b c"}], stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                pass
    assert UPSTREAM_ANTHROPIC_SECRET not in str(caught.value.body)
    [row] = await metered(daemon, 1)
    assert row["status"] == 529 and row["stream"] == 1


# -- a format the provider turns out not to serve ------------------------------------------------


async def test_a_404_for_an_assumed_format_is_remembered_and_translated(gw):
    """vLLM is assumed to serve /v1/messages and /v1/responses; this one answers 404 there: the call is translated,
    and so are the next ones, without asking again."""
    daemon, standin, key = gw
    standin.serve_only("/v1/chat/completions")
    async with anthropic_client(daemon, key) as client:
        for prompt in ("first call", "second call"):
            message = await client.messages.create(model="qwen-local", max_tokens=50, messages=[{"role": "user", "content": prompt}])
            assert message.content[0].text == reply_text(prompt)
    async with openai_client(daemon, key) as client:
        response = await client.responses.create(model="qwen-local", input="third call")
        assert response.output_text == reply_text("third call")
        await client.responses.create(model="qwen-local", input="fourth call")
    assert [r.path for r in standin.requests] == [
        "/v1/messages", "/v1/chat/completions", "/v1/chat/completions",
        "/v1/responses", "/v1/chat/completions", "/v1/chat/completions",
    ]
    rows = await metered(daemon, 4)
    assert all(r["status"] == 200 and r["estimated"] == 0 and r["provider"] == "local" for r in rows)
