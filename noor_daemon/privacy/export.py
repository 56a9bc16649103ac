"""An account's data as JSON or CSV, streamed page by page so a million rows need no more memory than one page."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import orjson

from noor_daemon.admin.serialize import account_json, key_json
from noor_daemon.clock import iso
from noor_daemon.gateway.auth import Account, ApiKey
from noor_daemon.ledger.database import Ledger

PAGE = 5000

USAGE_FIELDS = (
    "id", "ts", "key_id", "model", "provider", "endpoint", "status",
    "prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "stream", "estimated",
)


async def count_events(ledger: Ledger, account_id: str) -> int:
    row = await ledger.fetchone("SELECT count(*) FROM usage_events WHERE account_id = ?", (account_id,))
    return row[0] if row else 0


async def _event_pages(ledger: Ledger, account_id: str) -> AsyncIterator[list[dict]]:
    last_id = 0
    while True:
        rows = await ledger.fetchall(
            f"SELECT {', '.join(USAGE_FIELDS)} FROM usage_events WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
            (account_id, last_id, PAGE),
        )
        if not rows:
            return
        last_id = rows[-1]["id"]
        yield [
            {**dict(row), "ts": iso(row["ts"]), "stream": bool(row["stream"]), "estimated": bool(row["estimated"])}
            for row in rows
        ]


async def export_json(
    ledger: Ledger, account: Account, keys: list[ApiKey], now_ms: int, extra: dict | None = None
) -> AsyncIterator[bytes]:
    """`{"account", "api_keys", …extra, "usage_events": [...]}` with events streamed last."""
    head = {
        "exported_at": iso(now_ms),
        "account": account_json(account),
        "api_keys": [key_json(k, now_ms) for k in keys],
        **(extra or {}),
    }
    yield orjson.dumps(head)[:-1] + b', "usage_events": ['
    first = True
    async for page in _event_pages(ledger, account.id):
        body = b",\n".join(orjson.dumps(event) for event in page)
        yield (b"\n" if first else b",\n") + body
        first = False
    yield b"\n]}\n"


async def export_csv(ledger: Ledger, account: Account) -> AsyncIterator[bytes]:
    """The usage events, one row each, with a header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(USAGE_FIELDS)
    yield buffer.getvalue().encode()
    async for page in _event_pages(ledger, account.id):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([event[f] for f in USAGE_FIELDS] for event in page)
        yield buffer.getvalue().encode()
