"""A run of text pieces that arrive together (most of a stream, when the provider writes faster than the gateway
reads) is translated in one go; it must give the caller the very bytes the pieces give one event at a time.

Streams are made of text pieces (any text, its JSON written plainly or with \\u escapes, empty ones too) and odd
events among them: the provider's first chunk, a piece with something after it, a number for a text, two strings
where one belongs, a piece at another block index. Each is fed whole (one chunk) and one event per chunk.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noor_daemon.gateway.provider_errors import Scrubber
from noor_daemon.gateway.translate import CODECS, Translation
from noor_daemon.gateway.wire.sse import EventSplitter

pytestmark = pytest.mark.engine_independent

CLIENT_REQUESTS = {
    "chat/completions": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                         "stream_options": {"include_usage": True}},
    "responses": {"model": "m", "input": "hi", "stream": True},
    "messages": {"model": "m", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}], "stream": True},
}

_CHAT_HEAD = b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
CHAT = {
    "start": _CHAT_HEAD + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
    "piece": _CHAT_HEAD + b'"delta":{"content":%s},"finish_reason":null}]}\n\n',
    "odd": [
        _CHAT_HEAD + b'"delta":{"content":"x","refusal":null},"finish_reason":null}]}\n\n',
        _CHAT_HEAD + b'"delta":{"content":5},"finish_reason":null}]}\n\n',
        _CHAT_HEAD + b'"delta":{"content":"a","b"},"finish_reason":null}]}\n\n',
        _CHAT_HEAD + b'"delta":{"content":"y"},"logprobs":null,"finish_reason":null}]}\n\n',
    ],
    "end": [_CHAT_HEAD + b'"delta":{},"finish_reason":"stop"}]}\n\n',
            (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
             b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'),
            b"data: [DONE]\n\n"],
}
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}\n\n'
MESSAGES = {
    "start": (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":'
              b'"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,'
              b'"output_tokens":1}}}\n\n'
              b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text",'
              b'"text":""}}\n\n'),
    "piece": _DELTA.replace(b"%d", b"0"),
    "odd": [
        _DELTA.replace(b"%d", b"1") % b'"z"',
        _DELTA.replace(b"%d", b"0") % b"5",
        _DELTA.replace(b"%d", b"0") % b'"a","b"',
        b'event: ping\ndata: {"type":"ping"}\n\n',
    ],
    "end": [b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
            (b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
             b'"usage":{"output_tokens":4}}\n\n'),
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n'],
}
PROVIDERS = {"chat/completions": CHAT, "messages": MESSAGES}


def relay(events: list[bytes], client: str, provider: str, chunks: list[bytes]) -> bytes:
    payload = CLIENT_REQUESTS[client]
    request = CODECS[client].read_request(payload, CODECS[provider].title)
    meter = Translation(client, provider, request, payload, 1700000000, 10, Scrubber()).new_meter()
    splitter = EventSplitter()
    held: list[bytes] = []
    out = [meter.relay(splitter.feed(chunk), held) for chunk in chunks]
    return b"".join(out) + b"".join(held) + meter.finish()


piece = st.tuples(st.text(), st.booleans())
"""A text and whether its JSON is written ASCII-only (\\u escapes), as some servers write it."""
event = st.one_of(piece, st.integers(min_value=0, max_value=3))


@settings(max_examples=150, deadline=None)
@given(body=st.lists(event, max_size=12), provider=st.sampled_from(sorted(PROVIDERS)), data=st.data())
def test_a_run_of_pieces_is_the_pieces_one_at_a_time(body: list, provider: str, data: st.DataObject) -> None:
    shape = PROVIDERS[provider]
    client = data.draw(st.sampled_from([c for c in CLIENT_REQUESTS if c != provider]))
    events = [shape["start"]]
    for item in body:
        if isinstance(item, int):
            events.append(shape["odd"][item])
        else:
            text, ascii_only = item
            encoded = json.dumps(text).encode() if ascii_only else orjson.dumps(text)
            events.append(shape["piece"] % encoded)
    events += shape["end"]
    whole = relay(events, client, provider, [b"".join(events)])
    assert whole == relay(events, client, provider, events)
    if not any(isinstance(item, int) for item in body) and client != "responses":
        deltas = [orjson.loads(e.split(b"data: ", 1)[1]) for e in EventSplitter().feed(whole) if b"data: {" in e]
        said = "".join(d["delta"]["text"] for d in deltas if d.get("type") == "content_block_delta") if client == "messages" else \
            "".join(d["choices"][0]["delta"].get("content") or "" for d in deltas if d.get("choices"))
        assert said == "".join(text for text, _ in body)
