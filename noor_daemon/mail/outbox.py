"""The mail outbox: messages are queued in the ledger in the same transaction as the change they
report, and a background task hands them on with retries and exponential backoff.

A row keeps its recipient and message only until the message is sent or given up; then both
are cleared and the row is a bare record (kind, account, status, times, attempts). A
`forget` row (the notice that an account was deleted, whose address must not outlive the
send) is removed whole, and the WAL is truncated after it, so that the address is gone from
the database files too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosqlite

from noor_daemon.clock import Clock, iso
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.mail import templates
from noor_daemon.mail.senders import DeliveryError, Sender

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
MAX_ATTEMPTS = 8
"""30 s, 1, 2, 4, 8, 16, 32 min between tries: about an hour of retries before a message is given up."""
POLL_S = 5.0
CLAIM = 20


def backoff_seconds(attempts: int) -> float:
    """The wait after the `attempts`-th failed try."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    account_id: str | None
    recipient: str
    message: bytes
    attempts: int
    forget: bool


class Outbox:
    def __init__(self, ledger: Ledger, clock: Clock, sender: Sender, from_address: str, audit: AuditLog) -> None:
        self.ledger = ledger
        self.clock = clock
        self.sender = sender
        self.from_address = from_address
        self.audit = audit
        self.poll_interval = POLL_S
        self._wake = asyncio.Event()
        self.delivering = asyncio.Lock()
        """Held while a message is handed on; an erasure takes it so no delivery of the account is half done."""
        self.sent = 0
        self.failed = 0

    @property
    def smtp(self) -> bool:
        return self.sender.kind == "smtp"

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    # -- queueing ------------------------------------------------------------------

    async def enqueue_in(
        self,
        db: aiosqlite.Connection,
        rendered: templates.Rendered,
        recipient: str,
        *,
        account_id: str | None,
        forget: bool = False,
    ) -> int:
        """Queue a message inside the caller's transaction; it goes out once that commits."""
        now = self._now()
        message = templates.compose(rendered, sender=self.from_address, recipient=recipient, now_ms=now)
        cursor = await db.execute(
            """INSERT INTO mail_outbox (kind, account_id, recipient, message, next_attempt_at, created_at, forget)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (rendered.kind, account_id, recipient, bytes(message), now, now, int(forget)),
        )
        # The sender claims rows through the ledger's write lock, which this transaction holds:
        # woken now, it finds the row once the commit is done.
        self.wake()
        return cursor.lastrowid or 0

    async def enqueue(self, rendered: templates.Rendered, recipient: str, *, account_id: str | None) -> int:
        return await self.ledger.write(lambda db: self.enqueue_in(db, rendered, recipient, account_id=account_id))

    def wake(self) -> None:
        self._wake.set()

    # -- sending -------------------------------------------------------------------

    async def run(self) -> None:
        """The background sender: whatever is due now, then again when woken or every few seconds."""
        async with self.ledger.exclusive("mail") as mine:
            if mine:  # several daemons: only while no other one is sending
                await self.ledger.write(self._release_claims)
        while True:
            self._wake.clear()
            try:
                async with self.ledger.exclusive("mail") as mine:  # one sender among several daemons
                    if mine:
                        await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the ledger is unavailable for a moment: try again later
                log.error("mail outbox pass failed: %s", type(exc).__name__)
            try:  # not wait_for: on Python 3.11 it can swallow a cancellation that arrives as the event is set
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    @staticmethod
    async def _release_claims(db: aiosqlite.Connection) -> None:
        """Rows claimed by a daemon that stopped mid-send go back to the queue."""
        await db.execute("UPDATE mail_outbox SET status = 'pending' WHERE status = 'sending'")

    async def send_due(self) -> int:
        """Hand on every message that is due; returns how many were sent."""
        sent = 0
        erased = False
        while True:
            now = self._now()
            claimed = await self.ledger.write(lambda db: self._claim(db, now))
            if not claimed:
                break
            for row in claimed:
                ok, forgot = await self._deliver(row)
                sent += ok
                erased = erased or forgot
        if erased:
            await self.checkpoint()
        return sent

    async def _claim(self, db: aiosqlite.Connection, now: int) -> list[_Claimed]:
        async with db.execute(
            """SELECT id, kind, account_id, recipient, message, attempts, forget FROM mail_outbox
               WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?""",
            (now, CLAIM),
        ) as cursor:
            rows = [_Claimed(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in await cursor.fetchall()]
        claimed = []
        for row in rows:  # a row another daemon claimed meanwhile is not ours
            cursor = await db.execute("UPDATE mail_outbox SET status = 'sending' WHERE id = ? AND status = 'pending'", (row.id,))
            if cursor.rowcount:
                claimed.append(row)
        return claimed

    async def _deliver(self, row: _Claimed) -> tuple[bool, bool]:
        """Try one message; returns (sent, row erased)."""
        async with self.delivering:
            try:
                maildir_key = await self.sender.deliver(row.message, row.recipient)
            except DeliveryError as exc:
                return False, await self._failed(row, exc)
            now = self._now()

            async def record(db: aiosqlite.Connection) -> None:
                if row.forget:
                    await db.execute("DELETE FROM mail_outbox WHERE id = ?", (row.id,))
                else:
                    await db.execute(
                        """UPDATE mail_outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,
                               recipient = NULL, message = NULL, last_error = NULL, maildir_key = ?
                           WHERE id = ?""",
                        (now, maildir_key, row.id),
                    )

            await self.ledger.write(record)
        self.sent += 1
        log.info("mail %d (%s) sent by %s", row.id, row.kind, self.sender.kind)
        return True, row.forget

    async def _failed(self, row: _Claimed, exc: DeliveryError) -> bool:
        attempts = row.attempts + 1
        give_up = exc.permanent or attempts >= MAX_ATTEMPTS
        now = self._now()

        async def record(db: aiosqlite.Connection) -> None:
            if give_up:
                if row.forget:
                    await db.execute("DELETE FROM mail_outbox WHERE id = ?", (row.id,))
                else:
                    await db.execute(
                        """UPDATE mail_outbox SET status = 'failed', attempts = ?, last_error = ?,
                               recipient = NULL, message = NULL WHERE id = ?""",
                        (attempts, exc.reason, row.id),
                    )
                await self.audit.add_in(
                    db,
                    AuditEntry(
                        "mail.failed",
                        "system",
                        "mail",
                        str(row.id) if not row.forget else None,
                        row.account_id,
                        {"kind": row.kind, "attempts": attempts, "error": exc.reason},
                    ),
                )
            else:
                retry_at = now + int(backoff_seconds(attempts) * 1000)
                await db.execute(
                    "UPDATE mail_outbox SET status = 'pending', attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
                    (attempts, exc.reason, retry_at, row.id),
                )

        await self.ledger.write(record)
        if give_up:
            self.failed += 1
        log.warning(
            "mail %d (%s) attempt %d failed: %s%s", row.id, row.kind, attempts, exc.reason, "; given up" if give_up else ""
        )
        return give_up and row.forget

    async def checkpoint(self) -> None:
        """Truncate the WAL, so an erased row's old page images leave the files too."""
        for _ in range(20):
            if await self.ledger.checkpoint():
                return
            await asyncio.sleep(0.05)
        log.warning("the WAL could not be truncated yet; it will be at the next checkpoint")

    # -- erasure and views ---------------------------------------------------------

    async def erase_account_in(self, db: aiosqlite.Connection, account_id: str) -> list[str]:
        """Remove every outbox row of the account (sent or not); returns their Maildir keys."""
        async with db.execute(
            "SELECT maildir_key FROM mail_outbox WHERE account_id = ? AND maildir_key IS NOT NULL", (account_id,)
        ) as cursor:
            keys = [r[0] for r in await cursor.fetchall()]
        await db.execute("DELETE FROM mail_outbox WHERE account_id = ?", (account_id,))
        return keys

    async def summary(self, limit: int = 50) -> dict:
        """Counts by status and the latest rows: kinds, states and times, never an address."""
        counts = {r["status"]: r["n"] for r in await self.ledger.fetchall(
            "SELECT status, count(*) AS n FROM mail_outbox GROUP BY status"
        )}
        rows = await self.ledger.fetchall(
            """SELECT id, kind, account_id, status, attempts, next_attempt_at, created_at, sent_at, last_error
               FROM mail_outbox ORDER BY id DESC LIMIT ?""",
            (limit,),
        )
        return {
            "delivery": self.sender.kind,
            "counts": {s: counts.get(s, 0) for s in ("pending", "sending", "sent", "failed")},
            "data": [
                {
                    "id": r["id"],
                    "kind": r["kind"],
                    "account_id": r["account_id"],
                    "status": r["status"],
                    "attempts": r["attempts"],
                    "next_attempt_at": iso(r["next_attempt_at"]) if r["status"] == "pending" else None,
                    "created_at": iso(r["created_at"]),
                    "sent_at": iso(r["sent_at"]),
                    "last_error": r["last_error"],
                }
                for r in rows
            ],
        }


async def outbox_ctx(outbox: Outbox) -> AsyncIterator[None]:
    """The sender task for `app.cleanup_ctx`, started once the ledger is open."""
    task = asyncio.create_task(outbox.run(), name="mail-outbox")
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
