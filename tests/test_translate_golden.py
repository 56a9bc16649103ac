"""Golden tests of translation: requests, whole answers and streams written by hand from the providers'
documentation (tests/fixtures/translate/) translate to the expected bytes, in every direction.

- requests/NAME.json: a caller's request in one format, and the provider's request expected in another
  (or `refused`: the field a 400 must name).
- answers/NAME.provider.json: a provider's whole answer; NAME.to-CLIENT.json: what each other format's
  caller gets.
- streams/NAME.provider.sse: a provider's event stream; NAME.to-CLIENT.sse: the caller's events, byte
  for byte. Every translated stream is also fed to the real SDKs' stream helpers (anthropic's
  `accumulate_event`, openai's `ResponseStreamState` and `ChatCompletionStreamState`), which must
  accept it and end with the same final message as the translated whole answer of the same name.

Expected files are reviewed by hand; `NOOR_UPDATE_GOLDEN=1` rewrites them after a deliberate change.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.provider_errors import Scrubber
from noor_daemon.gateway.translate import CODECS, Translation, translate
from noor_daemon.gateway.translate.ir import Target
from noor_daemon.gateway.wire.sse import EventSplitter

pytestmark = pytest.mark.engine_independent

FIXTURES = Path(__file__).parent / "fixtures" / "translate"
UPDATE = os.environ.get("NOOR_UPDATE_GOLDEN") == "1"
NOW = 1700000000
PROVIDER_SECRET = "sk-provider-literal-secret-0123456789"
FORMATS = {"chat": "chat/completions", "responses": "responses", "messages": "messages"}

CLIENT_REQUESTS = {
    "chat": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True}},
    "responses": {"model": "m", "input": "hi", "stream": True, "include": ["reasoning.encrypted_content"]},
    "messages": {"model": "m", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}], "stream": True},
}
"""What the caller asked, for the answers and streams (the usage chunk, reasoning signatures, …)."""


def provider_format(name: str) -> str:
    return FORMATS[name.split("_", 1)[0].replace("anthropic", "messages")]


def translation(client: str, provider: str) -> Translation:
    payload = CLIENT_REQUESTS[client]
    request = CODECS[FORMATS[client]].read_request(payload, CODECS[provider].title)
    return Translation(FORMATS[client], provider, request, payload, NOW, 10, Scrubber((PROVIDER_SECRET,)))


def cases(folder: str, suffix: str) -> list[str]:
    return sorted(p.name.removesuffix(suffix) for p in (FIXTURES / folder).glob("*" + suffix))


def pairs(folder: str, suffix: str) -> list[tuple[str, str]]:
    """(fixture, client format) for each provider fixture and each format other than its own."""
    found = []
    for name in cases(folder, suffix):
        own = provider_format(name)
        found += [(name, client) for client, path in FORMATS.items() if path != own]
    return found


def golden(path: Path, actual: bytes) -> None:
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path.name} is missing: review the output and run with NOOR_UPDATE_GOLDEN=1")
        path.write_bytes(actual)
    assert actual == path.read_bytes(), f"{path.name} differs from the translation"


def pretty(document: object) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


# -- requests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", cases("requests", ".json"))
def test_request(name: str) -> None:
    path = FIXTURES / "requests" / f"{name}.json"
    case = orjson.loads(path.read_bytes())
    target = Target(case.get("kind", "openai"), 4096)
    if "refused" in case:
        with pytest.raises(GatewayError) as caught:
            translate(FORMATS[_short(case["from"])], case["request"], case["to"], "upstream-model", target,
                      raw_size=100, now=NOW, scrub=Scrubber())
        assert caught.value.status == 400 and caught.value.param == case["refused"], caught.value
        assert f"`{case['refused']}`" in caught.value.message
        return
    outgoing = translate(FORMATS[_short(case["from"])], case["request"], case["to"], "upstream-model", target,
                         raw_size=100, now=NOW, scrub=Scrubber())
    actual = {"payload": outgoing.payload, "headers": outgoing.headers}
    if UPDATE or "expected" not in case:
        if not UPDATE:
            pytest.fail(f"{name}: no expected request; review it and run with NOOR_UPDATE_GOLDEN=1")
        path.write_bytes(orjson.dumps({**case, "expected": actual}, option=orjson.OPT_INDENT_2) + b"\n")
        return
    assert actual == case["expected"]


def _short(path: str) -> str:
    return next(short for short, full in FORMATS.items() if full == path)


# -- whole answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, client", pairs("answers", ".provider.json"))
def test_answer(name: str, client: str) -> None:
    data = (FIXTURES / "answers" / f"{name}.provider.json").read_bytes()
    body, usage = translation(client, provider_format(name)).answer(data)
    golden(FIXTURES / "answers" / f"{name}.to-{client}.json", pretty(orjson.loads(body)))
    assert usage is not None, "the provider's usage is what the call is metered by"


# -- streams ---------------------------------------------------------------------------------------


def translate_stream(data: bytes, client: str, provider: str, chunks: list[bytes] | None = None) -> bytes:
    """The caller's bytes for a provider's stream fed in `chunks`, as the proxy writes them: what is ready
    as it comes, then what was held from the terminal event on, then the close of a stream without one."""
    meter = translation(client, provider).new_meter()
    splitter = EventSplitter()
    held: list[bytes] = []
    out = [meter.relay(splitter.feed(chunk), held) for chunk in (chunks if chunks is not None else [data])]
    return b"".join(out) + b"".join(held) + meter.finish()


STREAMS = pairs("streams", ".provider.sse")


@pytest.mark.parametrize("name, client", STREAMS)
def test_stream(name: str, client: str) -> None:
    data = (FIXTURES / "streams" / f"{name}.provider.sse").read_bytes()
    actual = translate_stream(data, client, provider_format(name))
    golden(FIXTURES / "streams" / f"{name}.to-{client}.sse", actual)
    assert PROVIDER_SECRET.encode() not in actual and b"sk-proj-ABCDEF" not in actual and b"SECRETSECRET" not in actual


@pytest.mark.parametrize("name, client", [(n, c) for n, c in STREAMS if (FIXTURES / "answers" / f"{n}.provider.json").exists()])
def test_stream_parsed_by_the_sdk_is_the_whole_answer(name: str, client: str) -> None:
    """The SDKs' own stream helpers accept the translated stream and end with the translated whole answer."""
    provider = provider_format(name)
    stream = translate_stream((FIXTURES / "streams" / f"{name}.provider.sse").read_bytes(), client, provider)
    whole, _ = translation(client, provider).answer((FIXTURES / "answers" / f"{name}.provider.json").read_bytes())
    events = [orjson.loads(e.split(b"data: ", 1)[1]) for e in EventSplitter().feed(stream) if b"data: [DONE]" not in e]
    expected = orjson.loads(whole)
    if client == "messages":
        snapshot = None
        json_bufs: dict[int, bytes] = {}
        for event in events:
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
        assert snapshot.model_dump(exclude={"id"}, exclude_none=True) == Message.model_validate(expected).model_dump(
            exclude={"id"}, exclude_none=True)
    elif client == "responses":
        from openai import omit
        from openai._models import construct_type

        state = ResponseStreamState(input_tools=omit, text_format=omit)
        last = None
        for event in events:
            for out in state.handle_event(construct_type(type_=ResponseStreamEvent, value=event)):
                last = out
        # response.completed, or response.incomplete (a length stop) with what was produced
        final = state._completed_response if last.type == "response.completed" else last.response
        want = Response.model_validate(expected)
        assert last.type == ("response.completed" if expected["status"] == "completed" else "response.incomplete")
        assert _arguments_parsed(final.model_dump(exclude_none=True)["output"]) == _arguments_parsed(
            want.model_dump(exclude_none=True)["output"])
        assert (final.usage, final.status, final.incomplete_details) == (want.usage, want.status, want.incomplete_details)
    else:
        state = ChatCompletionStreamState()
        for event in events:
            state.handle_chunk(ChatCompletionChunk.model_validate(event))
        final = state.current_completion_snapshot  # (get_final_completion refuses a length stop)
        want = ChatCompletion.model_validate(expected)
        got_message, want_message = final.choices[0].message, want.choices[0].message
        assert got_message.content == want_message.content
        assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in got_message.tool_calls or []] == [
            (c.id, c.function.name, orjson.loads(c.function.arguments)) for c in want_message.tool_calls or []]
        assert getattr(got_message, "reasoning_content", None) == getattr(want_message, "reasoning_content", None)
        assert final.choices[0].finish_reason == want.choices[0].finish_reason
        assert final.usage == want.usage


def _arguments_parsed(output: list[dict]) -> list[dict]:
    """Output items with tool arguments as JSON values: a provider's streamed pieces keep its spacing, its whole
    answer's `input` object is written compactly; the arguments are the same."""
    return [{**item, "arguments": orjson.loads(item["arguments"])} if "arguments" in item else item for item in output]


@pytest.mark.parametrize("name", cases("streams", ".provider.sse"))
def test_stream_split_at_every_byte(name: str) -> None:
    """A provider's stream cut in two at any byte (inside an event, a UTF-8 character, a CRLF) translates the same."""
    provider = provider_format(name)
    client = next(c for c, path in FORMATS.items() if path != provider)
    data = (FIXTURES / "streams" / f"{name}.provider.sse").read_bytes()
    whole = translate_stream(data, client, provider)
    for cut in range(1, len(data)):
        assert translate_stream(data, client, provider, [data[:cut], data[cut:]]) == whole, f"cut at byte {cut}"


def test_crlf_streams_translate_the_same() -> None:
    data = (FIXTURES / "streams" / "anthropic_tools.provider.sse").read_bytes()
    assert translate_stream(data.replace(b"\n", b"\r\n"), "chat", "messages") == translate_stream(data, "chat", "messages")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True), max_size=12))
@pytest.mark.parametrize("name, client", STREAMS)
def test_stream_in_any_chunks(name: str, client: str, cuts: list[float]) -> None:
    """Any chunking of a provider's stream (many cuts, empty chunks) gives the same translated events."""
    provider = provider_format(name)
    data = (FIXTURES / "streams" / f"{name}.provider.sse").read_bytes()
    points = sorted(int(c * len(data)) for c in cuts)
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    assert translate_stream(data, client, provider, chunks) == translate_stream(data, client, provider)


@pytest.mark.parametrize("text", ["plain", 'a "quoted" word', "ends with a backslash \\", "\\\\\"", "é ☕ \u2028", "", "\\"])
def test_text_pieces_pass_through_with_their_escapes(text: str) -> None:
    """The fast path copies a text piece's JSON string as the provider wrote it; it must end where JSON says it ends."""
    from noor_daemon.gateway.translate.stream import string_end

    for encoded in (orjson.dumps(text), orjson.dumps(text).replace("é".encode(), b"\\u00e9")):
        data = b'{"content":' + encoded + b'},"finish_reason":null}'
        start = data.index(b'"', 11)
        assert data[start : string_end(data, start) + 1] == encoded
        chunk = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":'
                 b'{"content":' + encoded + b'},"logprobs":null,"finish_reason":null}]}\n\n')
        head = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}\n\n'
        out = translate_stream(head + chunk + b"data: [DONE]\n\n", "messages", "chat/completions")
        deltas = [orjson.loads(e.split(b"data: ", 1)[1]) for e in EventSplitter().feed(out) if b"text_delta" in e]
        assert "".join(d["delta"]["text"] for d in deltas) == text
