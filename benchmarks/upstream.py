"""A fast stand-in upstream for benchmarks: OpenAI chat and Anthropic messages, streaming or not, with usage.

It does as little as an HTTP server can, so that what the benchmark measures is the proxy.
Run alone: `python -m benchmarks.upstream --port 9100`.
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

STREAM_EVENTS = 25

_CHAT = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * 20}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
    }
)
_CHUNK = b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench","choices":[{"index":0,"delta":{"content":"ok "},"finish_reason":null}]}\n\n'
_USAGE = b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":25,"total_tokens":37}}\n\n'
_MESSAGE = orjson.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "ok " * 20}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 20},
    }
)


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=_CHAT, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for _ in range(STREAM_EVENTS - 1):
        await response.write(_CHUNK)
    if (body.get("stream_options") or {}).get("include_usage"):
        await response.write(_USAGE)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


_MESSAGE_EVENTS = [
    (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant",'
     b'"model":"bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}\n\n'),
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    *[b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok "}}\n\n']
    * (STREAM_EVENTS - 5),
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    (b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
     b'"usage":{"output_tokens":20}}\n\n'),
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
"""A 25-event Messages stream, the same length as the chat stream."""


async def messages(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=_MESSAGE, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for event in _MESSAGE_EVENTS:
        await response.write(event)
    await response.write_eof()
    return response


def create_app() -> web.Application:
    app = web.Application()
    app.add_routes([web.post("/v1/chat/completions", chat), web.post("/v1/messages", messages)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
