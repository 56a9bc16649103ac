"""An account's data as JSON or CSV, streamed page by page so a million rows need no more memory than one page.

JSON: `exported_at`, `account`, `api_keys` (metadata, never hashes), `retention`, `quota`,
`privacy_requests`, then the streamed `audit_log` (entries about the account) and
`usage_events` (those within retention). CSV: the usage events.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator

import orjson

from noor_daemon.admin.serialize import account_json, key_json
from noor_daemon.clock import iso
from noor_daemon.gateway.auth import Account, ApiKey
from noor_daemon.ledger.database import Ledger

PAGE = 1000
AUDIT_PAGE = 1000

USAGE_FIELDS = (
    "id", "ts", "key_id", "model", "provider", "endpoint", "status",
    "prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "stream", "estimated",
)


async def count_events(ledger: Ledger, account_id: str, since_ms: int = 0) -> int:
    row = await ledger.fetchone(
        "SELECT count(*) FROM usage_events WHERE account_id = ? AND ts >= ?", (account_id, since_ms)
    )
    return row[0] if row else 0


async def _event_pages(ledger: Ledger, account_id: str, since_ms: int = 0) -> AsyncIterator[list[dict]]:
    """Pages in time order, each found by its (ts, id) key on the (account_id, ts) index: every page
    costs the same, the millionth row as the first (paging by id alone sorted the account's rows anew
    for every page)."""
    last_ts, last_id = since_ms, 0  # (ts, id) > (since, 0) is ts >= since: ids start at 1
    while True:
        rows = await ledger.fetchall(
            f"""SELECT {', '.join(USAGE_FIELDS)} FROM usage_events
                WHERE account_id = ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?""",
            (account_id, last_ts, last_id, PAGE),
        )
        if not rows:
            return
        last_ts, last_id = rows[-1]["ts"], rows[-1]["id"]
        yield [
            {**dict(row), "ts": iso(row["ts"]), "stream": bool(row["stream"]), "estimated": bool(row["estimated"])}
            for row in rows
        ]


async def _audit_pages(ledger: Ledger, account_id: str) -> AsyncIterator[list[dict]]:
    last_ts, last_id = -1, 0
    while True:
        rows = await ledger.fetchall(
            "SELECT * FROM audit_log WHERE account_id = ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?",
            (account_id, last_ts, last_id, AUDIT_PAGE),
        )
        if not rows:
            return
        last_ts, last_id = rows[-1]["ts"], rows[-1]["id"]
        yield [
            {
                "id": r["id"],
                "ts": iso(r["ts"]),
                "actor": r["actor"],
                "action": r["action"],
                "target_type": r["target_type"],
                "target_id": r["target_id"],
                "details": json.loads(r["details"]) if r["details"] else None,
            }
            for r in rows
        ]


async def _array(name: bytes, pages: AsyncIterator[list[dict]], *, one_per_line: bool) -> AsyncIterator[bytes]:
    """`, "name": [...]`; usage events one per line (the CLI counts lines for its progress bar)."""
    sep = b",\n" if one_per_line else b","
    lead = b"\n" if one_per_line else b""
    yield b', "' + name + b'": ['
    first = True
    async for page in pages:
        body = sep.join(orjson.dumps(item) for item in page)
        yield (lead if first else sep) + body
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
    }
    yield orjson.dumps(head)[:-1]
    if include_audit:
        async for chunk in _array(b"audit_log", _audit_pages(ledger, account.id), one_per_line=False):
            yield chunk
    async for chunk in _array(b"usage_events", _event_pages(ledger, account.id, since_ms), one_per_line=True):
        yield chunk
    yield b"}\n"


async def export_csv(ledger: Ledger, account: Account, *, since_ms: int = 0) -> AsyncIterator[bytes]:
    """The usage events, one row each, with a header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(USAGE_FIELDS)
    yield buffer.getvalue().encode()
    async for page in _event_pages(ledger, account.id, since_ms):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([event[f] for f in USAGE_FIELDS] for event in page)
        yield buffer.getvalue().encode()


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
