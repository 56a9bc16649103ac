"""Answers broken on the wire, through the daemon with the real SDKs: a body cut short (by its length, before
its last chunk, or by a reset when it had no length) or corrupt gzip is a 502 in the caller's API shape,
metered once, and another route takes the call while nothing was sent; interim 1xx answers are skipped."""

from __future__ import annotations

import anthropic
import openai
import pytest
from gateway_helpers import anthropic_client, openai_client, wait_for_rows
from standin_upstream import OPENAI_KEY_ENV

from benchmarks.closing_upstream import ClosingUpstream
from noor_daemon.state import PROXY

pytestmark = pytest.mark.engine_independent

BROKEN = ["cut_length", "cut_chunked", "reset_unknown_length", "corrupt_gzip", "truncated_gzip"]


def config(upstream: ClosingUpstream, standin=None) -> str:
    fallback = ""
    routes = '{ provider = "broken", model = "standin" }'
    if standin is not None:
        fallback = f"""
[[providers]]
name = "healthy"
kind = "openai"
base_url = "{standin.openai_base}"
api_key = "env:{OPENAI_KEY_ENV}"
"""
        routes += ', { provider = "healthy", model = "standin-gpt", priority = 1 }'
    return f"""
[[providers]]
name = "broken"
kind = "openai"
base_url = "{upstream.base_url}"
api_key = "env:{OPENAI_KEY_ENV}"

[[providers]]
name = "broken-anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{upstream.port}"
api_key = "env:{OPENAI_KEY_ENV}"
{fallback}
[[models]]
name = "gpt-test"
routes = [{routes}]

[[models]]
name = "claude-test"
routes = [{{ provider = "broken-anthropic", model = "standin" }}]
"""


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(OPENAI_KEY_ENV, "sk-upstream")
    server = await ClosingUpstream(idle_range=(30, 30)).start()
    yield server
    await server.stop()


MESSAGES = [{"role": "user", "content": "say ok"}]


@pytest.mark.parametrize("mode", BROKEN)
async def test_a_broken_json_answer_is_a_502_in_the_callers_shape_and_metered_once(start_daemon, upstream, mode):
    upstream.mode = mode
    daemon = await start_daemon(config(upstream))
    key = await daemon.create_key("broken@example.com")
    with pytest.raises(openai.APIStatusError) as caught:
        await openai_client(daemon, key).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == 502
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"} and "'broken'" in error["message"]
    assert "ok ok" not in error["message"]  # nothing of the upstream's body is quoted
    with pytest.raises(anthropic.APIStatusError) as caught_anthropic:
        await anthropic_client(daemon, key).messages.create(model="claude-test", max_tokens=16, messages=MESSAGES)
    assert caught_anthropic.value.status_code == 502
    assert caught_anthropic.value.body["type"] == "error" and caught_anthropic.value.body["error"]["type"] == "api_error"
    rows = await wait_for_rows(daemon, 2)
    assert [(r["status"], r["provider"]) for r in rows] == [(502, "broken"), (502, "broken-anthropic")]


@pytest.mark.parametrize("mode", BROKEN)
async def test_while_nothing_was_sent_another_route_takes_the_call_and_the_broken_one_is_counted(start_daemon, upstream,
                                                                                                   standin, mode):
    upstream.mode = mode
    daemon = await start_daemon(config(upstream, standin))
    client = openai_client(daemon, await daemon.create_key("fallback@example.com"))
    completion = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.choices[0].message.content and len(standin.requests) == 1
    chunks = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    if "gzip" in mode:  # nothing decodable reached the client: the stream falls back too
        assert [c async for c in chunks] and len(standin.requests) == 2
        expected = [(200, "healthy"), (200, "healthy")]
    else:  # cut after its first event, which has reached the client: an error event ends it
        with pytest.raises(openai.APIError):
            async for _ in chunks:
                pass
        expected = [(200, "healthy"), (502, "broken")]
    rows = await wait_for_rows(daemon, 2)
    assert [(r["status"], r["provider"]) for r in rows] == expected
    broken = next(r for r in daemon.app[PROXY].router.snapshot() if r["provider"] == "broken")
    assert broken["failures"] == 2


async def test_interim_answers_before_the_final_one_are_skipped_for_json_and_streams(start_daemon, upstream):
    upstream.mode = "interim"
    daemon = await start_daemon(config(upstream))
    client = openai_client(daemon, await daemon.create_key("interim@example.com"))
    completion = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.choices[0].message.content == "ok ok ok"
    chunks = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    assert "".join([c.choices[0].delta.content for c in [c async for c in chunks] if c.choices]) == "ok ok ok "
    rows = await wait_for_rows(daemon, 2)
    assert [(r["status"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [(200, 5, 3), (200, 5, 3)]
