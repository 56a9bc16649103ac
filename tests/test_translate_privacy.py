"""Content never persists through a translated call, and a provider's error body never reaches the caller verbatim.

The canary of tests/test_privacy_canary.py travels through translated calls in every direction (prompts, tool
calls, tool results, streamed and whole answers, provider errors mid-stream): it must be in no file of the data
dir, no log record at any level, no output stream. A provider that echoes its own key in an error (as a
response, as a stream's error event, as text or HTML) gets only its type and message, redacted, to the caller:
for relayed and translated calls alike.
"""

from __future__ import annotations

import logging

import anthropic
import openai
import pytest
from gateway_helpers import anthropic_client, openai_client, wait_for_rows
from standin_upstream import (
    ANTHROPIC_KEY_ENV,
    OPENAI_KEY_ENV,
    UPSTREAM_ANTHROPIC_SECRET,
    UPSTREAM_OPENAI_SECRET,
    Script,
    standin_config,
)
from test_privacy_canary import CLIENT_LOGGERS, assert_absent, check_data_dir, new_canary

TOOL = {"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object", "properties": {"word": {"type": "string"}},
                                                                             "required": ["word"]}}


def translating_config(standin) -> str:
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

[[models]]
name = "gpt-x"
routes = [{{ provider = "chat-only", model = "standin-gpt" }}]

[[models]]
name = "claude-x"
routes = [{{ provider = "claude", model = "standin-claude" }}]
"""


async def drive_translated(daemon, standin, key: str, canary: str) -> None:
    """Every direction, whole and streamed, tools and errors, each carrying the canary."""
    prompt = f"Use lookup for `{canary}`"
    async with anthropic_client(daemon, key) as client:
        first = await client.messages.create(model="gpt-x", max_tokens=64, system=f"sys {canary}", tools=[TOOL],
                                             messages=[{"role": "user", "content": prompt}])
        [call] = [b for b in first.content if b.type == "tool_use"]
        assert call.input == {"word": canary}  # the canary really travelled, both ways
        async with client.messages.stream(model="gpt-x", max_tokens=64, tools=[TOOL], messages=[
            {"role": "user", "content": prompt}, {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": f"found {canary}"}]},
        ]) as stream:
            assert canary in "".join([t async for t in stream.text_stream])
        standin.fail(500, f"failed on {canary}", extra={"echo": canary})
        with pytest.raises(anthropic.InternalServerError):
            await client.messages.create(model="gpt-x", max_tokens=64, messages=[{"role": "user", "content": prompt}])
        standin.reset()
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(model="gpt-x", max_tokens=64, extra_body={"top_k": 3},
                                         messages=[{"role": "user", "content": prompt}])
    async with openai_client(daemon, key) as client:
        standin.script(Script(reasoning=f"thinking about {canary}"))
        reply = await client.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": prompt}])
        assert canary in reply.choices[0].message.content and canary in reply.choices[0].message.model_extra["reasoning_content"]
        stream = await client.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": prompt}], stream=True)
        assert canary in "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        standin.script(None)
        for model in ("claude-x", "gpt-x"):
            assert canary in (await client.responses.create(model=model, input=prompt, instructions=canary)).output_text
            async with client.responses.stream(model=model, input=prompt) as responses:
                assert canary in (await responses.get_final_response()).output_text
        standin.error_mid_stream(after=4, status=529, message=f"overloaded by {canary}")
        stream = await client.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": prompt}], stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
        standin.reset()
    assert any(canary.encode() in r.raw for r in standin.requests), "the canary never reached the provider"


async def test_canary_through_translated_calls_is_nowhere(standin, start_daemon, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    canary = new_canary()
    data = tmp_path / "translated-canary"
    daemon = await start_daemon(translating_config(standin), data_dir=data)
    key = await daemon.create_key("translated-canary@example.com")
    await drive_translated(daemon, standin, key, canary)
    rows = await wait_for_rows(daemon, 11)
    assert len(rows) == 11 and {r["status"] for r in rows} == {200, 400, 500, 529}
    await daemon.runner.cleanup()  # everything flushed and checkpointed
    check_data_dir(data, canary, key, ledger_inside=(data / "ledger.sqlite3").exists())  # (on PostgreSQL it is not)
    for record in caplog.records:
        if record.name.startswith(CLIENT_LOGGERS):
            continue  # the test's own SDKs log their requests: they are the caller
        text = f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        assert_absent(f"log record {record.name}:{record.levelname}", text.encode(), canary)
    out, err = capfd.readouterr()
    assert_absent("stdout/stderr", (out + err).encode(), canary)


# -- provider error bodies -----------------------------------------------------------------------

ECHOED_KEY = "sk-ant-api03-" + "K" * 40
"""A key-shaped string a provider's error might echo (another tenant's, a proxy's log line)."""
MARKER = "RAW-PROVIDER-DUMP"


@pytest.fixture
async def both(standin, start_daemon):
    """The stand-in's relayed models (gpt-test, claude-test) and translated ones (gpt-x, claude-x) on one daemon."""
    daemon = await start_daemon(standin_config(standin, extra=translating_config(standin)))
    return daemon, await daemon.create_key("errors@example.com")


def clean(body: object) -> str:
    text = str(body)
    for secret in (UPSTREAM_OPENAI_SECRET, UPSTREAM_ANTHROPIC_SECRET, ECHOED_KEY, MARKER):
        assert secret not in text, f"{secret[:12]}… reached the caller"
    return text


@pytest.mark.parametrize("model", ["gpt-test", "gpt-x"])  # relayed, translated (to Anthropic)
async def test_openai_callers_get_the_providers_error_redacted(standin, both, model):
    daemon, key = both
    leak = f"Provider failed; keys {UPSTREAM_OPENAI_SECRET} {UPSTREAM_ANTHROPIC_SECRET} {ECHOED_KEY}"
    standin.fail(503, leak, extra={"internal": MARKER, "param": "messages"})
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert caught.value.status_code == 503 and set(error) == {"message", "type", "param", "code"}
    assert "Provider failed; keys" in clean(error) and "[REDACTED]" in error["message"]
    standin.fail_raw(502, f"upstream connect error; Authorization: Bearer {UPSTREAM_OPENAI_SECRET}".encode())
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert "upstream connect error" in clean(caught.value.body)
    standin.fail_raw(502, f"<html><body>Bad gateway {MARKER}</body></html>".encode(), "text/html")
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert "HTML page" in clean(caught.value.body)


@pytest.mark.parametrize("model", ["claude-test", "claude-x"])  # relayed, translated (to chat)
async def test_anthropic_callers_get_the_providers_error_redacted(standin, both, model):
    daemon, key = both
    standin.fail(529, f"Overloaded; {UPSTREAM_ANTHROPIC_SECRET} {ECHOED_KEY}", extra={"debug": MARKER})
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 529 and set(caught.value.body["error"]) == {"type", "message"}
    assert "Overloaded" in clean(caught.value.body)


@pytest.mark.parametrize("model", ["claude-test", "gpt-x"])  # a relayed stream's error event, a translated one
async def test_stream_error_events_are_redacted(standin, both, model):
    daemon, key = both
    standin.error_mid_stream(after=3, status=529, message=f"Overloaded; {UPSTREAM_ANTHROPIC_SECRET} {ECHOED_KEY}")
    async with anthropic_client(daemon, key) as client:
        stream = await client.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "a b c d"}], stream=True)
        with pytest.raises(anthropic.APIStatusError) as caught:
            async for _ in stream:
                pass
    assert "Overloaded" in clean(caught.value.body)
    rows = await wait_for_rows(daemon, 1)
    # Anthropic's error event says overloaded (529); a chat provider's error chunk says server_error (500)
    assert rows[-1]["status"] == (529 if model == "claude-test" else 500)
