"""The audit log: who did what to which account or key, and when. No content, no emails."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aiosqlite

from noor_daemon.clock import Clock, iso
from noor_daemon.ledger.database import Ledger

log = logging.getLogger(__name__)

INSERT = """INSERT INTO audit_log (ts, actor, action, target_type, target_id, account_id, details)
            VALUES (?, ?, ?, ?, ?, ?, ?)"""


@dataclass(frozen=True)
class AuditEntry:
    action: str
    """Dotted verb: account.created, key.revoked, abuse.spike_flagged, retention.ran…"""
    actor: str = "admin"
    target_type: str | None = None
    target_id: str | None = None
    account_id: str | None = None
    details: dict | None = None


class AuditLog:
    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self.ledger = ledger
        self.clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    def _row(self, entry: AuditEntry) -> tuple:
        details = json.dumps(entry.details, sort_keys=True) if entry.details else None
        return (
            int(self.clock.now() * 1000),
            entry.actor,
            entry.action,
            entry.target_type,
            entry.target_id,
            entry.account_id,
            details,
        )

    async def add_in(self, db: aiosqlite.Connection, entry: AuditEntry) -> None:
        """Write `entry` inside a transaction the caller already holds (same commit as the change)."""
        await db.execute(INSERT, self._row(entry))

    async def add(self, entry: AuditEntry) -> None:
        await self.ledger.write(lambda db: self.add_in(db, entry))

    def add_soon(self, entry: AuditEntry) -> None:
        """Write `entry` in the background: for the request path, which must not wait on it."""
        task = asyncio.get_running_loop().create_task(self._add_logged(entry))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _add_logged(self, entry: AuditEntry) -> None:
        try:
            await self.add(entry)
        except Exception as exc:
            log.error("audit entry %s could not be written: %s", entry.action, type(exc).__name__)

    async def drain(self) -> None:
        """Wait for background entries; called before the ledger closes."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def entries(
        self, *, account_id: str | None = None, action: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict]:
        clauses, params = [], []
        if account_id:
            clauses.append("account_id = ?")
            params.append(account_id)
        if action:
            clauses.append("action LIKE ?")
            params.append(action.replace("*", "%"))
        if before_id:
            clauses.append("id < ?")
            params.append(before_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.ledger.fetchall(
            f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [entry_view(r) for r in rows]


def entry_view(row, *, with_account: bool = True) -> dict:
    """An audit row as the admin API and the data export show it (the export, one account's own, without `account_id`)."""
    view = {
        "id": row["id"],
        "ts": iso(row["ts"]),
        "actor": row["actor"],
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
    }
    if with_account:
        view["account_id"] = row["account_id"]
    view["details"] = json.loads(row["details"]) if row["details"] else None
    return view
