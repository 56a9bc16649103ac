"""Data-rights requests: access, correction, deletion, each due 30 days after it was received.

A request is recorded when it arrives (an admin records one received by mail; a key holder
asks for deletion through /v1/me) or, when it is answered on the spot (an export, an email
change, a deletion), recorded and completed at once. Answering completes the oldest open
request of that kind for the account. After a deletion the account is named by its
pseudonym here, as in the audit log.
"""

from __future__ import annotations

import aiosqlite

from noor_daemon.clock import Clock, iso
from noor_daemon.ledger.accounts import NotFound
from noor_daemon.ledger.database import Ledger

KINDS = ("access", "correction", "deletion")
SOURCES = ("admin", "self")
DUE_MS = 30 * 86_400_000


class RequestNotFound(NotFound):
    pass


def source_of(actor: str) -> str:
    return "self" if actor == "self" else "admin"


class PrivacyRequests:
    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self.ledger = ledger
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    async def open_in(
        self,
        db: aiosqlite.Connection,
        kind: str,
        account_id: str,
        source: str,
        *,
        note: str | None = None,
        confirm_hash: str | None = None,
        confirm_expires_at: int | None = None,
        received_at: int | None = None,
    ) -> int:
        received = self._now() if received_at is None else received_at
        cursor = await db.execute(
            """INSERT INTO privacy_requests (kind, account_id, source, status, received_at, due_at,
                   confirm_hash, confirm_expires_at, note)
               VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?)""",
            (kind, account_id, source, received, received + DUE_MS, confirm_hash, confirm_expires_at, note),
        )
        return cursor.lastrowid or 0

    async def fulfil_in(self, db: aiosqlite.Connection, kind: str, account_id: str, source: str) -> int:
        """Complete the oldest open `kind` request of the account, or record one received and answered now."""
        now = self._now()
        async with db.execute(
            "SELECT id FROM privacy_requests WHERE kind = ? AND account_id = ? AND status = 'open' ORDER BY id LIMIT 1",
            (kind, account_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            request_id = await self.open_in(db, kind, account_id, source, received_at=now)
        else:
            request_id = row[0]
        await db.execute(
            """UPDATE privacy_requests SET status = 'completed', completed_at = ?, confirm_hash = NULL,
                   confirm_expires_at = NULL WHERE id = ?""",
            (now, request_id),
        )
        return request_id

    async def complete_in(self, db: aiosqlite.Connection, request_id: int, note: str | None) -> None:
        async with db.execute("SELECT status FROM privacy_requests WHERE id = ?", (request_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise RequestNotFound(f"no privacy request {request_id}")
        if row[0] != "open":
            return
        await db.execute(
            """UPDATE privacy_requests SET status = 'completed', completed_at = ?, confirm_hash = NULL,
                   confirm_expires_at = NULL, note = coalesce(?, note) WHERE id = ?""",
            (self._now(), note, request_id),
        )

    async def cancel_expired_in(self, db: aiosqlite.Connection) -> int:
        """Self-service deletion requests whose confirmation token expired unused are cancelled."""
        cursor = await db.execute(
            """UPDATE privacy_requests SET status = 'cancelled', confirm_hash = NULL,
                   note = coalesce(note, 'confirmation token expired unused')
               WHERE status = 'open' AND confirm_expires_at IS NOT NULL AND confirm_expires_at <= ?""",
            (self._now(),),
        )
        return cursor.rowcount

    def view(self, row) -> dict:
        now = self._now()
        status = row["status"]
        awaiting = status == "open" and row["confirm_expires_at"] is not None
        if awaiting and row["confirm_expires_at"] <= now:
            status, awaiting = "expired", False
        overdue = status == "open" and not awaiting and row["due_at"] < now
        return {
            "id": row["id"],
            "kind": row["kind"],
            "account_id": row["account_id"],
            "source": row["source"],
            "status": status,
            "awaiting_confirmation": awaiting,
            "received_at": iso(row["received_at"]),
            "due_at": iso(row["due_at"]),
            "completed_at": iso(row["completed_at"]),
            "overdue": overdue,
            "days_left": None if status != "open" else (row["due_at"] - now) // 86_400_000,
            "note": row["note"],
        }

    async def get(self, request_id: int) -> dict:
        row = await self.ledger.fetchone("SELECT * FROM privacy_requests WHERE id = ?", (request_id,))
        if row is None:
            raise RequestNotFound(f"no privacy request {request_id}")
        return self.view(row)

    async def list(
        self,
        *,
        status: str | None = None,
        account_id: str | None = None,
        kind: str | None = None,
        overdue: bool = False,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[dict]:
        clauses, params = [], []
        if status in ("open", "completed", "cancelled"):
            clauses.append("status = ?")
            params.append(status)
        if overdue:
            clauses.append("status = 'open' AND confirm_expires_at IS NULL AND due_at < ?")
            params.append(self._now())
        if account_id:
            clauses.append("account_id = ?")
            params.append(account_id)
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if before_id:
            clauses.append("id < ?")
            params.append(before_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.ledger.fetchall(
            f"SELECT * FROM privacy_requests {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [self.view(r) for r in rows]

    async def for_account(self, account_id: str) -> list[dict]:
        rows = await self.ledger.fetchall(
            "SELECT * FROM privacy_requests WHERE account_id = ? ORDER BY id", (account_id,)
        )
        return [self.view(r) for r in rows]

    async def counts(self) -> dict:
        now = self._now()
        row = await self.ledger.fetchone(
            """SELECT sum(CASE WHEN status = 'open' AND confirm_expires_at IS NULL THEN 1 ELSE 0 END) AS open,
                      sum(CASE WHEN status = 'open' AND confirm_expires_at IS NULL AND due_at < ? THEN 1 ELSE 0 END) AS overdue
               FROM privacy_requests""",
            (now,),
        )
        return {"open": (row["open"] or 0) if row else 0, "overdue": (row["overdue"] or 0) if row else 0}
