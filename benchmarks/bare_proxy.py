"""A minimal aiohttp pass-through proxy: the ceiling for a proxy written in Python on aiohttp.

It forwards each POST body to the upstream on one shared ClientSession (keep-alive, no
connection limit) and relays the answer: whole for JSON, chunk by chunk as it arrives for a
stream. No auth, no parsing, no metering — whatever the gateway adds over this is the price
of what it does. Run alone: `python -m benchmarks.bare_proxy --port 9200 --upstream http://127.0.0.1:9100`.
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
_PASS_REQUEST = ("anthropic-version", "anthropic-beta")


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    base = upstream.rstrip("/")

    async def session_ctx(app: web.Application):
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            app[SESSION] = session
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": "application/json"}
        for name in _PASS_REQUEST:
            if name in request.headers:
                headers[name] = request.headers[name]
        async with request.app[SESSION].post(base + request.path, data=body, headers=headers) as upstream_reply:
            if upstream_reply.content_type == "text/event-stream":
                response = web.StreamResponse(
                    status=upstream_reply.status, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                )
                await response.prepare(request)
                async for chunk in upstream_reply.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
            data = await upstream_reply.read()
            return web.Response(status=upstream_reply.status, body=data, content_type=upstream_reply.content_type)

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, e.g. http://127.0.0.1:9100")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(create_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
