"""/admin/v1/events: a server-sent event stream of metered calls, for the dashboard's live feed.

Each event is one call: time, account id, key display prefix, model, provider, endpoint,
status, token counts, latency and time to first token. Never content, never an email.
The stream opens with the latest calls (or, with `Last-Event-ID`, the ones missed since),
sends a comment every few seconds so proxies and clients see it alive, and reports
events it had to drop because the reader fell behind as `event: dropped`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.state import LEDGER, LIVE

routes = web.RouteTableDef()

HEARTBEAT_SECONDS = 10.0


def _int_or_none(value: str | None, name: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"`{name}` must be a whole number.") from None
    if not low <= number <= high:
        raise bad_request(f"`{name}` must be between {low} and {high}.")
    return number


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    request.config_dict[LEDGER].publish()  # the backlog holds every committed call
    live = request.config_dict[LIVE]
    backlog = _int_or_none(request.query.get("backlog"), "backlog", 0, 200)
    after = _int_or_none(request.headers.get("Last-Event-ID"), "Last-Event-ID", 0, 2**62)
    sub = live.feed.subscribe(after=after, backlog=50 if backlog is None else backlog)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n: noor live feed\n\n")
        reported = 0
        while not sub.closed:
            try:
                item = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            items = [item] if item is not None else []
            while item is not None and len(items) < 256:  # send what has queued up in one write
                try:
                    item = sub.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is not None:
                    items.append(item)
            if item is None:
                sub.closed = True
            notice = b""
            if sub.dropped > reported:
                notice = b'event: dropped\ndata: {"dropped": %d}\n\n' % (sub.dropped - reported)
                reported = sub.dropped
            payload = b"".join(b"id: %d\nevent: call\ndata: %s\n\n" % (seq, data) for seq, data in items)
            if notice or payload:
                await response.write(notice + payload)
        await response.write_eof()
    except ConnectionResetError:  # the dashboard went away
        pass
    finally:
        live.feed.unsubscribe(sub)
    return response
