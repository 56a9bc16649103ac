"""The HTTP server around the app: a request that cannot be parsed is answered as JSON and logged without its bytes.

aiohttp answers a malformed request (a broken chunked body, a bad header line, an oversized header) from
its protocol layer, before any handler or middleware runs: as text/plain quoting the offending bytes, and
with a traceback whose last line quotes them again. A gateway's requests are prompts, so `GatewayRunner`
serves the app with a request handler whose `handle_error` answers in the API's error shape (OpenAI's, or
Anthropic's when the request says `anthropic-version`), never echoing input, and logs the error's type and
status only. `noor daemon` and the tests both serve through it.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
"""Connections the kernel holds for the daemon before it accepts them. aiohttp's default of 128 overflows
when a team's agents open connections in a burst (each dropped SYN costs its caller a second or more)."""

_MESSAGES = {
    400: "The HTTP request could not be parsed (its request line, a header or its body is malformed).",
    413: "The request is larger than the gateway accepts.",
    431: "A request header is larger than the gateway accepts.",
    500: "The gateway failed on this request; its log names the error.",
}
_OPENAI_TYPES = {500: "server_error"}
_ANTHROPIC_TYPES = {413: "request_too_large", 500: "api_error"}


def error_body(status: int, anthropic: bool) -> bytes:
    """A protocol-level error in the API's own shape, with a fixed message (nothing of the request)."""
    message = _MESSAGES.get(status, _MESSAGES[400])
    if anthropic:
        return orjson.dumps({"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "invalid_request_error"), "message": message}})
    code = {431: "request_header_fields_too_large", 413: "request_too_large"}.get(status, "invalid_request" if status < 500 else "internal_error")
    return orjson.dumps({"error": {"message": message, "type": _OPENAI_TYPES.get(status, "invalid_request_error"), "param": None, "code": code}})


class GatewayRequestHandler(RequestHandler):
    """aiohttp's connection handler, with errors of the HTTP layer answered as JSON and logged without input."""

    __slots__ = ()  # the same layout as aiohttp's handler, so an instance of it can take this class

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if isinstance(exc, LineTooLong) and status == 400:
            status = 431  # an oversized header line: say so, as RFC 6585 does
        elif isinstance(exc, HttpProcessingError) and exc.code >= 400:
            status = exc.code
        # The type and the status only: an exception's text here quotes the request's bytes.
        log.log(logging.ERROR if status >= 500 else logging.INFO, "refused an HTTP request: %s (%d)",
                type(exc).__name__ if exc else "error", status)
        if request.writer.output_size > 0:  # the answer has begun: it can only be cut off
            raise ConnectionError("the response had begun when the request failed")
        try:
            anthropic = "anthropic-version" in request.headers
        except Exception:  # the headers themselves may be what failed
            anthropic = False
        response = web.Response(status=status, body=error_body(status, anthropic), content_type="application/json")
        response.force_close()
        return response


class _GatewayServer(web.Server):
    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        # aiohttp builds its handler itself and has no hook for the class: this one adds behaviour, no state.
        handler.__class__ = GatewayRequestHandler
        return handler


class GatewayRunner(web.AppRunner):
    """An `AppRunner` whose connections are handled by `GatewayRequestHandler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _GatewayServer
        return server

    async def listen(self, host: str, port: int, ssl_context=None) -> tuple[str, int]:
        """Start serving on `host:port` (0: any free port) with the gateway's backlog; the address bound."""
        site = web.TCPSite(self, host, port, ssl_context=ssl_context, backlog=LISTEN_BACKLOG)
        await site.start()
        return self.addresses[-1][:2]
