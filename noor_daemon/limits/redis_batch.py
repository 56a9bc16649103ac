"""Concurrent runs of one Lua script, sent together: a burst of calls costs a few round trips.

Every call of the request path runs the ADMIT script. Sent one by one, a burst of a
thousand calls means a thousand commands, dozens of new connections and their handshakes,
all while the event loop is busiest. Here the calls that arrive while a batch is on the
wire wait for the next one, which goes as one pipeline (EVALSHA only; a script Redis no
longer knows, after a restart or SCRIPT FLUSH, is loaded and its commands sent again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

log = logging.getLogger("noor_daemon.limits")

BATCH = 128
"""Scripts per pipeline; a bigger burst goes in several."""
SENDERS = 4
"""Pipelines on the wire at once, so one slow answer does not hold up every call behind it."""


class ScriptBatcher:
    def __init__(self, client: Redis, script: str) -> None:
        self.client = client
        self.script = client.register_script(script)
        self._waiting: list[tuple[Sequence[Any], Sequence[Any], asyncio.Future[Any]]] = []
        self._senders: set[asyncio.Task] = set()

    def run(self, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """The script's answer (or its error) for `keys` and `args`, once its batch came back.

        Cancelling the future does not unsend it: a batch on the wire runs in Redis anyway.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, args, future))
        if len(self._senders) < SENDERS:
            sender = asyncio.get_running_loop().create_task(self._send_all(), name="redis-limits-batch")
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return future

    async def _send_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            try:
                replies = await self._send(batch)
            except BaseException as exc:  # the connection failed (or the daemon is stopping): every call learns it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("stopped"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, _, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    async def _send(self, batch: list[tuple[Sequence[Any], Sequence[Any], asyncio.Future[Any]]]) -> list[Any]:
        replies = await self._pipeline(batch)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            self.script.sha = await self.client.script_load(self.script.script)
            replies = await self._pipeline(batch)
        return replies

    async def _pipeline(self, batch: list[tuple[Sequence[Any], Sequence[Any], asyncio.Future[Any]]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.evalsha(self.script.sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)

    def cancel(self) -> None:
        for sender in list(self._senders):
            sender.cancel()
