"""Lua scripts run as pipelines of EVALSHA: a burst of calls costs a few round trips.

Every call of the request path runs the ADMIT script. Sent one by one, a burst of a
thousand calls means a thousand commands, dozens of new connections and their handshakes,
all while the event loop is busiest. `ScriptBatcher` sends the calls that arrive while a
batch is on the wire together, as the next pipeline.

A script Redis does not know (after a restart or SCRIPT FLUSH) fails with NOSCRIPT; it is
loaded and only the commands that failed are sent again, since the others ran (another
daemon may load it between two commands of one pipeline).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

log = logging.getLogger("noor_daemon.limits")

BATCH = 128
"""Scripts per pipeline; a bigger burst goes in several."""
SENDERS = 4
"""Pipelines on the wire at once, so one slow answer does not hold up every call behind it."""

ScriptCall = tuple[AsyncScript, Sequence[Any], Sequence[Any]]
"""(script, keys, args)"""


async def run_scripts(client: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Each call's reply, or the error Redis gave it, in order; one pipeline (two if a script was unknown)."""
    replies = await _pipeline(client, calls)
    unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if unknown:
        for script in {id(calls[i][0]): calls[i][0] for i in unknown}.values():
            script.sha = await client.script_load(script.script)
        for i, reply in zip(unknown, await _pipeline(client, [calls[i] for i in unknown]), strict=True):
            replies[i] = reply
    return replies


def raise_first_error(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipeline(client: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    return await pipe.execute(raise_on_error=False)


class ScriptBatcher:
    """Concurrent runs of one script, sent together."""

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
                replies = await run_scripts(self.client, [(self.script, keys, args) for keys, args, _ in batch])
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

    def cancel(self) -> None:
        for sender in list(self._senders):
            sender.cancel()
