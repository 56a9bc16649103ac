"""An account's data as JSON or CSV, streamed page by page so a million rows need no more memory than one page.

JSON: `exported_at`, `account`, `api_keys` (metadata, never hashes), `retention`, `quota`,
`privacy_requests`, then the streamed `audit_log` (entries about the account) and
`usage_events` (those within retention). CSV: the usage events.
"""

from __future__ import annotations

import asyncio
import csv
from decimal import Decimal
import io
import re
from collections.abc import AsyncIterator

import orjson

from noor_daemon.clock import iso
from noor_daemon.domain.money import UNIT
from noor_daemon.domain.accounts import Account, ApiKey
from noor_daemon.domain.serialize import account_json, key_json
from noor_daemon.ledger.audit import entry_view
from noor_daemon.ledger.database import Ledger

PAGE = 1000
AUDIT_PAGE = 1000

USAGE_FIELDS = (
    "id", "ts", "key_id", "model", "provider", "endpoint", "status",
    "prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "stream", "estimated",
    "cached_tokens", "cache_write_tokens", "cost",
)
COST_NOTE = (
    "cost: an estimate in the daemon's currency from the price table in effect when the call was metered "
    "(noor prices), not a bill; empty when no price applied"
)


def cost_text(picounits: int | None) -> str | None:
    """A call's cost in currency units, exactly (`0.000435`), from the integer the ledger keeps."""
    return None if picounits is None else f"{Decimal(picounits) / UNIT:f}"



async def count_events(ledger: Ledger, account_id: str, since_ms: int = 0) -> int:
    row = await ledger.fetchone(
        "SELECT count(*) FROM usage_events WHERE account_id = ? AND ts >= ?", (account_id, since_ms)
    )
    return row[0] if row else 0


_EVENTS_PAGE_SQL = f"""SELECT {', '.join(USAGE_FIELDS)} FROM usage_events
    WHERE account_id = ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?"""


async def _event_pages(ledger: Ledger, account_id: str, since_ms: int = 0) -> AsyncIterator[list]:
    """Raw rows (`USAGE_FIELDS` order) page by page in time order, each page found by its (ts, id) key on
    the (account_id, ts) index: every page costs the same, the millionth row as the first. The next page is
    read while the caller formats this one, so the reader's thread and the event loop work side by side."""

    def fetch(ts: int, row_id: int) -> asyncio.Task:
        return asyncio.ensure_future(ledger.fetchall(_EVENTS_PAGE_SQL, (account_id, ts, row_id, PAGE)))

    # (ts, id) > (since, 0) is ts >= since: ids start at 1
    pending: asyncio.Task | None = fetch(since_ms, 0)
    try:
        while pending is not None:
            rows = await pending
            pending = fetch(rows[-1][1], rows[-1][0]) if len(rows) >= PAGE else None
            if rows:
                yield rows
    finally:  # the client went away: the page being read is not wanted, nor its error
        if pending is not None and not pending.cancel() and not pending.cancelled():
            pending.exception()


class _Timestamps:
    """`clock.iso` for the export's millions of rows: a day's prefix is formatted once and the time of
    day comes from small tables, about a tenth of the cost of a datetime per row, and the same text."""

    HOURS_MINUTES = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
    SECONDS = [f"{s:02d}" for s in range(60)]
    MILLIS = [f".{ms:03d}Z" for ms in range(1000)]

    def __init__(self) -> None:
        self.days: dict[int, str] = {}

    def __call__(self, ts: int) -> str:
        if type(ts) is not int:
            return iso(ts)
        day, rem = divmod(ts, 86_400_000)
        prefix = self.days.get(day)
        if prefix is None:
            if len(self.days) > 4096:
                self.days.clear()
            prefix = self.days[day] = iso(day * 86_400_000)[:11]  # "YYYY-MM-DDT"
        minute, rem = divmod(rem, 60_000)
        return prefix + self.HOURS_MINUTES[minute] + self.SECONDS[rem // 1000] + self.MILLIS[rem % 1000]


def _event_lines(rows: list, stamp: _Timestamps) -> bytes:
    """The rows as JSON objects one per line (keys in `USAGE_FIELDS` order: a dict display and orjson, no
    per-row Row → dict). Appended as they are made: orjson's output keeps a 4 KB buffer, so a page of
    them held at once would be 4 MB."""
    dumps = orjson.dumps
    out = bytearray()
    for r in rows:
        out += dumps(
            {
                "id": r[0], "ts": stamp(r[1]), "key_id": r[2], "model": r[3], "provider": r[4], "endpoint": r[5],
                "status": r[6], "prompt_tokens": r[7], "completion_tokens": r[8], "latency_ms": r[9],
                "ttft_ms": r[10], "stream": bool(r[11]), "estimated": bool(r[12]),
                "cached_tokens": r[13], "cache_write_tokens": r[14], "cost": cost_text(r[15]),
            }
        )
        out += b",\n"
    del out[-2:]
    return bytes(out)


async def _audit_pages(ledger: Ledger, account_id: str) -> AsyncIterator[bytes]:
    last_ts, last_id = -1, 0
    while True:
        rows = await ledger.fetchall(
            "SELECT * FROM audit_log WHERE account_id = ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?",
            (account_id, last_ts, last_id, AUDIT_PAGE),
        )
        if not rows:
            return
        last_ts, last_id = rows[-1]["ts"], rows[-1]["id"]
        yield b",".join([orjson.dumps(entry_view(r, with_account=False)) for r in rows])


async def _array(name: bytes, pages: AsyncIterator[bytes], *, one_per_line: bool) -> AsyncIterator[bytes]:
    """`, "name": [...]` from pages of encoded, separated items; usage events one per line (the CLI
    counts lines for its progress bar)."""
    sep = b",\n" if one_per_line else b","
    lead = b"\n" if one_per_line else b""
    yield b', "' + name + b'": ['
    first = True
    async for page in pages:
        yield (lead if first else sep) + page
        first = False
    yield lead + b"]" if not first else b"]"


async def export_json(
    ledger: Ledger,
    account: Account,
    keys: list[ApiKey],
    now_ms: int,
    extra: dict | None = None,
    *,
    since_ms: int = 0,
    include_audit: bool = True,
) -> AsyncIterator[bytes]:
    """`{"account", "api_keys", …extra, "audit_log": [...], "usage_events": [...]}`, the arrays streamed last."""
    head = {
        "exported_at": iso(now_ms),
        "account": account_json(account),
        "api_keys": [key_json(k, now_ms) for k in keys],
        **(extra or {}),
        "usage_cost_note": COST_NOTE,
    }
    yield orjson.dumps(head)[:-1]
    if include_audit:
        async for chunk in _array(b"audit_log", _audit_pages(ledger, account.id), one_per_line=False):
            yield chunk
    stamp = _Timestamps()
    lines = (_event_lines(rows, stamp) async for rows in _event_pages(ledger, account.id, since_ms))
    async for chunk in _array(b"usage_events", lines, one_per_line=True):
        yield chunk
    yield b"}\n"


class _CsvText:
    """What the csv module writes for a text column (quoted when it holds a comma, a quote or a line
    break; nothing for NULL), remembered: an account's rows repeat a few keys, models and providers.

    A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, a tab or a CR first) is made inert
    with a leading `'`, as OWASP advises for CSV exports: `=HYPERLINK(…)` opens as text, not as a link."""

    SPECIAL = re.compile(r'[,"\r\n]')
    FORMULA = ("=", "+", "-", "@", "\t", "\r")

    def __init__(self) -> None:
        self.known: dict[object, str] = {}

    def __call__(self, value: object) -> str:
        text = self.known.get(value)
        if text is None:
            if len(self.known) > 4096:
                self.known.clear()
            if value is None:
                text = ""
            else:
                text = value if isinstance(value, str) else str(value)
                if text.startswith(self.FORMULA):
                    text = "'" + text
                if self.SPECIAL.search(text):
                    text = '"' + text.replace('"', '""') + '"'
            self.known[value] = text
        return text


_CSV_LINE = "%s,%s,%s,%s,%s,%s,%s,%s,%s,%r,%s,%s,%s,%s,%s,%s\r\n"


def _csv_lines(rows: list, stamp: _Timestamps, text: _CsvText) -> str:
    """The rows as `csv.writer` writes them (floats by repr, NULL as nothing, booleans as True/False),
    formatted directly: a third less work per row than writerows on converted tuples."""
    return "".join(
        [
            _CSV_LINE % (
                r[0], stamp(r[1]), text(r[2]), text(r[3]), text(r[4]), text(r[5]), r[6], r[7], r[8], r[9],
                "" if r[10] is None else repr(r[10]), "True" if r[11] else "False", "True" if r[12] else "False",
                r[13], r[14], "" if r[15] is None else cost_text(r[15]),
            )
            for r in rows
        ]
    )


async def export_csv(ledger: Ledger, account: Account, *, since_ms: int = 0) -> AsyncIterator[bytes]:
    """The usage events, one row each, with a header line."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(USAGE_FIELDS)
    yield buffer.getvalue().encode()
    stamp, text = _Timestamps(), _CsvText()
    async for rows in _event_pages(ledger, account.id, since_ms):
        yield _csv_lines(rows, stamp, text).encode()


async def respond(request, service, account: Account, fmt: str, *, actor: str):
    """Stream the export of `account` as the answer to `request`, and record it (access request, audit)."""
    from aiohttp import web

    ledger = service.ledger
    since = service.export_since()
    total = await count_events(ledger, account.id, since)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/json" if fmt == "json" else "text/csv",
            "Content-Disposition": f'attachment; filename="noorapi-export-{account.id}.{fmt}"',
            "X-Noor-Export-Events": str(total),
            "Cache-Control": "no-store",
        }
    )
    if fmt == "json":
        now_ms = int(service.clock.now() * 1000)
        keys = await service.accounts.list_keys(account.id)
        extra = await service.export_extra(account)
        chunks = export_json(ledger, account, keys, now_ms, extra, since_ms=since)
    else:
        chunks = export_csv(ledger, account, since_ms=since)
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    # Recorded before the last bytes: when the requester holds the whole export, it is on record.
    await service.record_export(account, fmt=fmt, events=total, actor=actor)
    await response.write_eof()
    return response
