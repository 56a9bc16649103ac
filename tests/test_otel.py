"""OpenTelemetry: with `[telemetry]`, each call is a trace (the call, then auth, limits, route, upstream, meter) and
GenAI metrics are exported over OTLP/HTTP to a real receiver (tests/otlp_receiver.py decodes the protobuf);
nothing of a prompt, a completion or an upstream error body, and no account or key id or email, is in any byte
sent, unless the operator opts in to hashed ids. Without `[telemetry]` nothing is wrapped."""

from __future__ import annotations

import openai
import pytest
from gateway_helpers import anthropic_client, openai_client, wait_for_rows
from otlp_receiver import OtlpReceiver
from standin_upstream import UPSTREAM_ANTHROPIC_SECRET, UPSTREAM_OPENAI_SECRET, standin_config

from noor_daemon.gateway.proxy import Proxy
from noor_daemon.state import ACCOUNTS, LEDGER, LIMITER, PROXY
from noor_daemon.telemetry import TELEMETRY, hashed_id

pytestmark = pytest.mark.engine_independent

CANARY = "CANARY-otel-4b7e9d"
EMAIL = "traced@example.com"
STEPS = {"auth", "limits", "route", "meter"}


@pytest.fixture
async def receiver():
    server = await OtlpReceiver().start()
    yield server
    await server.stop()


def telemetry_section(receiver: OtlpReceiver, extra: str = "") -> str:
    return f'\n[telemetry]\nendpoint = "{receiver.url}"\nexport_interval = 0.2\nservice_name = "noor-test"\n{extra}'


async def traffic(daemon, standin, key: str) -> None:
    """Every kind of call, each carrying the canary: chat, a stream, Anthropic messages, an upstream error, a bad key."""
    prompt = [{"role": "user", "content": f"say {CANARY}"}]
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(model="gpt-test", messages=prompt)
        assert CANARY in reply.choices[0].message.content  # the stand-in echoes it: it is in the completion too
        stream = await client.chat.completions.create(model="gpt-test", messages=prompt, stream=True)
        async for _ in stream:
            pass
        standin.fail(500, f"upstream broke on {CANARY}")
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-test", messages=prompt)
        standin.reset()
    async with anthropic_client(daemon, key) as client:
        await client.messages.create(model="claude-test", max_tokens=16, messages=prompt)
    async with openai_client(daemon, "sk-noor-" + "x" * 40) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="gpt-test", messages=prompt)


async def test_calls_are_traced_and_measured_without_content_or_identity(receiver, start_daemon, standin) -> None:  # the collector outlives the daemon
    daemon = await start_daemon(standin_config(standin) + telemetry_section(receiver))
    key = await daemon.create_key(EMAIL)
    await traffic(daemon, standin, key)
    await wait_for_rows(daemon, 5)
    server_spans = lambda: [s for s in receiver.spans if s.kind == 2]  # noqa: E731 (SPAN_KIND_SERVER)
    await receiver.wait_for(lambda: len(server_spans()) >= 5, what="five server spans")
    await receiver.wait_for(lambda: {p.metric for p in receiver.points} >= {
        "gen_ai.client.token.usage", "gen_ai.client.operation.duration", "gen_ai.server.time_to_first_token"}, what="the metrics")

    # One trace per call: the server span, and under it each step of the request path.
    ok = [s for s in server_spans() if s.attributes.get("http.response.status_code") == 200]
    assert len(ok) == 3
    chat = next(s for s in ok if s.name == "POST /v1/chat/completions" and not s.attributes["noor.stream"])
    assert chat.resource["service.name"] == "noor-test"
    assert chat.attributes["gen_ai.operation.name"] == "chat" and chat.attributes["gen_ai.request.model"] == "gpt-test"
    assert chat.attributes["gen_ai.provider.name"] == "openai" and chat.attributes["noor.provider"] == "standin-openai"
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0 and chat.attributes["gen_ai.usage.output_tokens"] > 0
    children = {s.name: s for s in receiver.spans if s.trace_id == chat.trace_id and s.parent_id == chat.span_id}
    assert STEPS <= set(children), children.keys()
    upstream = next(s for s in children.values() if s.kind == 3)  # SPAN_KIND_CLIENT: the GenAI client span
    assert upstream.name == "chat standin-gpt"  # the route's model, as the provider knows it
    assert upstream.attributes["gen_ai.request.model"] == "standin-gpt" and upstream.attributes["http.response.status_code"] == 200
    streamed = next(s for s in ok if s.attributes.get("noor.stream"))
    assert streamed.attributes["noor.time_to_first_token_ms"] > 0
    messages = next(s for s in ok if s.name == "POST /v1/messages")
    assert messages.attributes["gen_ai.provider.name"] == "anthropic"
    failed = next(s for s in server_spans() if s.attributes.get("http.response.status_code", 0) >= 500)
    assert failed.attributes["error.type"] == str(failed.attributes["http.response.status_code"])
    refused = next(s for s in server_spans() if s.attributes.get("http.response.status_code") == 401)
    auth = next(s for s in receiver.spans if s.trace_id == refused.trace_id and s.name == "auth")
    assert auth.attributes["error.type"] == "401"

    # GenAI metrics from the committed calls.
    usage = [p for p in receiver.points if p.metric == "gen_ai.client.token.usage"]
    assert {p.attributes["gen_ai.token.type"] for p in usage} == {"input", "output"}
    assert {p.attributes["gen_ai.request.model"] for p in usage} == {"gpt-test", "claude-test"}
    assert all(p.unit == "{token}" for p in usage)
    durations = [p for p in receiver.points if p.metric == "gen_ai.client.operation.duration"]
    assert all(p.unit == "s" for p in durations) and any(p.attributes.get("error.type") == "500" for p in durations)
    assert any(p.count >= 1 for p in receiver.points if p.metric == "gen_ai.server.time_to_first_token")

    # Nothing of the content, and nobody's identity, in any byte that left.
    account = await daemon.app[ACCOUNTS].get_account(EMAIL)
    key_ids = [r["id"] for r in await daemon.app[LEDGER].fetchall("SELECT id FROM api_keys")]
    assert key_ids
    forbidden = [CANARY, EMAIL, account.id, key, key[:16], UPSTREAM_OPENAI_SECRET, UPSTREAM_ANTHROPIC_SECRET, *key_ids]
    sent = b"".join(receiver.raw)
    for needle in forbidden:
        assert needle.encode() not in sent, needle
    assert hashed_id(account.id).encode() not in sent  # not even hashed unless asked


async def test_hashed_ids_only_when_the_operator_opts_in(receiver, start_daemon, standin) -> None:  # the collector outlives the daemon
    daemon = await start_daemon(standin_config(standin) + telemetry_section(receiver, "hashed_ids = true\n"))
    key = await daemon.create_key(EMAIL)
    async with openai_client(daemon, key) as client:
        await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    await receiver.wait_for(lambda: any(s.kind == 2 for s in receiver.spans), what="the server span")
    account = await daemon.app[ACCOUNTS].get_account(EMAIL)
    span = next(s for s in receiver.spans if s.kind == 2)
    assert span.attributes["noor.account.id_hash"] == hashed_id(account.id)
    assert len(span.attributes["noor.key.id_hash"]) == 16
    sent = b"".join(receiver.raw)
    assert account.id.encode() not in sent and EMAIL.encode() not in sent


async def test_a_callers_traceparent_is_continued(receiver, start_daemon, standin) -> None:  # the collector outlives the daemon
    daemon = await start_daemon(standin_config(standin) + telemetry_section(receiver))
    key = await daemon.create_key(EMAIL)
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with anthropic_client(daemon, key, default_headers={"traceparent": f"00-{trace_id}-{parent}-01"}) as client:
        await client.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    await receiver.wait_for(lambda: any(s.kind == 2 for s in receiver.spans), what="the server span")
    span = next(s for s in receiver.spans if s.kind == 2)
    assert (span.trace_id, span.parent_id) == (trace_id, parent)


async def test_without_telemetry_nothing_is_wrapped(start_daemon, standin) -> None:
    daemon = await start_daemon(standin_config(standin))
    proxy = daemon.app[PROXY]
    assert TELEMETRY not in daemon.app
    for name in ("handle", "guarded_authenticate", "meter"):
        assert getattr(proxy, name).__func__ is getattr(Proxy, name), name  # the class's own methods: no cost
    assert "admit" not in vars(daemon.app[LIMITER]) and "routes" not in vars(proxy.router)
