"""/v1/me: what a key holder may do with its own account — usage, quota, export, deletion, billing.

Every route answers in OpenAI's error shape, like the rest of /v1, and authenticates the caller
exactly as the proxy does (`account.caller`).
"""

from __future__ import annotations

import functools

from aiohttp import web

from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway.wire import WIRES
from noor_daemon.selfservice import account, billing, privacy, usage


def _speaks_openai_errors(handler):
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as error:
            return WIRES["chat/completions"].error_response(error)

    return wrapped


def routes() -> list[web.RouteDef]:
    """Every /v1/me route, each answering errors as the OpenAI API would."""
    tables = (account.routes, usage.routes, privacy.routes, billing.routes)
    return [
        web.route(route.method, route.path, _speaks_openai_errors(route.handler), **route.kwargs)
        for table in tables
        for route in table
        if isinstance(route, web.RouteDef)
    ]
