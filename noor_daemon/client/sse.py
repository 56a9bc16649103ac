"""Reading a server-sent event stream (the admin API's live feed) as (event name, JSON data) pairs.

Separate from http.py because a stream outlives the request timeout: it has its own read
deadline, tied to the daemon's keep-alive comments.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from .http import DaemonUnreachable, _reason


async def _sse_stream(
    http: aiohttp.ClientSession,
    base_url: str,
    url: str,
    params: dict[str, str] | None,
    headers: dict[str, str] | None,
    error_from: Callable[[aiohttp.ClientResponse], Awaitable[Exception]],
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) for each server-sent event. The daemon sends a comment every 10 s,
    so a read that waits 45 s means the connection is dead."""
    timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=45.0)
    try:
        async with http.get(url, params=params, headers=headers, timeout=timeout) as response:
            if response.status >= 400:
                raise await error_from(response)
            name, data = "message", []
            async for raw in response.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if data:
                        try:
                            yield name, json.loads("\n".join(data))
                        except ValueError:
                            pass
                    name, data = "message", []
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
    except aiohttp.ClientConnectionError as exc:
        raise DaemonUnreachable(base_url, _reason(exc)) from None
    except asyncio.TimeoutError:
        raise DaemonUnreachable(base_url, "timed out") from None
