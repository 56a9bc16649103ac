"""Usage to Stripe's billing meter, through a durable outbox.

Filling: committed usage (the hourly rollups, `usage_hourly`) is folded per account per closed
hour. An hour is closed `meter_delay_seconds` after it ends, so calls still streaming at its
end are in it. Each (account, hour) gets an outbox row whose `identifier` is fixed when the row
is written (`noor-<account>-<hour>-<seq>`), so every retry of it sends the same identifier and
Stripe counts it once. A call committed after its hour was queued (a stream longer than the
delay) adds a row with the next `seq` for the difference: nothing is lost, nothing counted twice.

Sending: a background pass sends due rows one by one. A failure is retried with exponential
backoff (30 s doubling to an hour); a refusal (4xx) is given up after a day and audited.
The row is marked sent only after Stripe answered; a daemon stopped between the two sends
the same identifier again, which Stripe ignores. Nothing of this runs on the request path.
"""

from __future__ import annotations

import logging

import aiosqlite

from noor_daemon.billing.stripe_api import StripeApi, StripeUnavailable
from noor_daemon.clock import Clock, iso
from noor_daemon.domain.money import minor_units
from noor_daemon.domain.windows import closed_hours
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import HOUR_MS, UsageEvent

log = logging.getLogger(__name__)

WINDOW_MS = HOUR_MS
LOOKBACK_MS = 48 * HOUR_MS
"""Closed hours are compared with what was queued for this long, to catch late rows."""
MAX_AGE_MS = 34 * 86_400_000
"""Stripe takes meter events up to 35 days old; older hours are not queued."""
PRUNE_AFTER_MS = 40 * 86_400_000
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
REFUSED_TRIES = 5
REFUSED_FOR_MS = 86_400_000
"""A row refused (4xx, not 408/409/429) is given up after this many tries over at least a day,
time enough to fix a misconfigured meter before any usage is dropped."""
REFUSED_IN_A_ROW = 3
"""This many refusals in a row end the pass: the cause is likely the config, not the rows."""
SEND_BATCH = 100
SINCE_KEY = "meter.since"
FILLED_KEY = "meter.filled_until"


def backoff_seconds(attempts: int) -> float:
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


def identifier(account_id: str, window_start_ms: int, seq: int) -> str:
    """Stable for the row's life: the same (account, hour, seq) always sends the same identifier."""
    return f"noor-{account_id}-{window_start_ms // 1000}-{seq}"


class MeterOutbox:
    def __init__(
        self, ledger: Ledger, clock: Clock, api: StripeApi, audit: AuditLog, *, value: str, delay_seconds: int,
        currency: str = "USD",
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.api = api
        self.audit = audit
        self.value = value
        """What a meter event counts: tokens, requests (successful ones), or cost (in `currency`'s minor unit)."""
        self.currency = currency
        self.delay_ms = delay_seconds * 1000
        self.since = 0
        """Hours starting before this were used before billing was set up; they are never reported."""
        self.sent = 0
        self.failures = 0
        self._filled_end = 0
        self._late = False

    def on_commit(self, events: list[UsageEvent]) -> None:
        """Ledger listener: a committed call in an hour already queued means that hour owes more."""
        edge = self._filled_end
        if not self._late and any(e.ts < edge and e.account_id for e in events):
            self._late = True

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    async def load(self) -> None:
        """The first start with billing fixes `since` at the current hour: earlier usage is not billed."""
        now = self._now()

        async def ensure(db: aiosqlite.Connection) -> int:
            await db.execute(
                "INSERT OR IGNORE INTO billing_state (key, value) VALUES (?, ?)", (SINCE_KEY, str(now - now % WINDOW_MS))
            )
            async with db.execute("SELECT value FROM billing_state WHERE key = ?", (SINCE_KEY,)) as cursor:
                (value,) = await cursor.fetchone()
            return int(value)

        self.since = await self.ledger.write(ensure)

    # -- filling -----------------------------------------------------------------------

    def closed_before(self, now_ms: int) -> int:
        """Hours starting before this are closed."""
        return max(0, closed_hours(now_ms, self.delay_ms))

    async def fill(self) -> int:
        """Queue what committed usage owes for closed hours; returns the rows queued."""
        now = self._now()
        end = self.closed_before(now)
        if end <= self._filled_end and not self._late:
            return 0  # no hour closed and no late call since the last fill
        self._late = False

        async def queue(db: aiosqlite.Connection) -> int:
            async with db.execute("SELECT value FROM billing_state WHERE key = ?", (FILLED_KEY,)) as cursor:
                row = await cursor.fetchone()
            filled = int(row[0]) if row else self.since
            start = max(min(filled, end - LOOKBACK_MS), self.since, now - MAX_AGE_MS)
            start -= start % WINDOW_MS
            if start >= end:
                return 0
            measure = {"tokens": "prompt_tokens + completion_tokens", "requests": "requests - errors", "cost": "cost"}[self.value]
            async with db.execute(
                f"""SELECT account_id, hour, sum({measure}) FROM usage_hourly
                    WHERE hour >= ? AND hour < ? AND account_id != '' GROUP BY account_id, hour""",
                (start, end),
            ) as cursor:
                used = await cursor.fetchall()
            async with db.execute(
                """SELECT account_id, window_start, sum(value), max(seq) FROM billing_meter_outbox
                   WHERE window_start >= ? AND window_start < ? GROUP BY account_id, window_start""",
                (start, end),
            ) as cursor:
                queued = {(r[0], r[1]): (r[2], r[3]) for r in await cursor.fetchall()}
            rows = []
            if self.value == "cost":  # whole cents (say) of the hour's exact cost: each row sends what the last did not
                used = [(account_id, hour, minor_units(int(total or 0), self.currency)) for account_id, hour, total in used]
            for account_id, hour, total in used:
                already, seq = queued.get((account_id, hour), (0, 0))
                if total and total > already:
                    rows.append(
                        (account_id, hour, seq + 1, identifier(account_id, hour, seq + 1), total - already, now, now)
                    )
            if rows:
                await db.executemany(
                    """INSERT INTO billing_meter_outbox
                           (account_id, window_start, seq, identifier, value, next_attempt_at, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    rows,
                )
            await db.execute(
                "INSERT INTO billing_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (FILLED_KEY, str(end)),
            )
            return len(rows)

        try:
            queued = await self.ledger.write(queue)
        except BaseException:
            self._late = True  # try the whole range again next pass
            raise
        self._filled_end = end
        return queued

    # -- sending -------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Send every due row whose account has a Stripe customer; stop at the first failure
        that says Stripe is unreachable (the rest waits for the next pass). Returns rows sent."""
        sent = 0
        while True:
            now = self._now()
            rows = await self.ledger.fetchall(
                """SELECT o.id, o.account_id, o.identifier, o.value, o.window_start, o.attempts, o.created_at, c.customer_id
                   FROM billing_meter_outbox o JOIN billing_customers c ON c.account_id = o.account_id
                   WHERE o.status = 'pending' AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?""",
                (now, SEND_BATCH),
            )
            if not rows:
                return sent
            refused = 0
            for row in rows:
                try:
                    await self.api.meter_event(
                        identifier=row["identifier"],
                        customer_id=row["customer_id"],
                        value=row["value"],
                        timestamp=(row["window_start"] + WINDOW_MS) // 1000 - 1,
                    )
                except StripeUnavailable as exc:
                    await self._failed(row, exc)
                    refused += 1
                    if exc.retryable or refused >= REFUSED_IN_A_ROW:
                        return sent
                    continue
                refused = 0
                await self.ledger.write(
                    lambda db, row_id=row["id"]: db.execute(
                        """UPDATE billing_meter_outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,
                               last_error = NULL WHERE id = ? AND status = 'pending'""",
                        (self._now(), row_id),
                    )
                )
                sent += 1
                self.sent += 1
            if len(rows) < SEND_BATCH:
                return sent

    async def _failed(self, row, exc: StripeUnavailable) -> None:
        attempts = row["attempts"] + 1
        now = self._now()
        give_up = not exc.retryable and attempts >= REFUSED_TRIES and now - row["created_at"] >= REFUSED_FOR_MS
        self.failures += 1

        async def record(db: aiosqlite.Connection) -> None:
            if give_up:
                await db.execute(
                    "UPDATE billing_meter_outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
                    (attempts, exc.reason, row["id"]),
                )
                await self.audit.add_in(
                    db,
                    AuditEntry(
                        "billing.meter_failed", "system", "meter_event", row["identifier"], row["account_id"],
                        {"value": row["value"], "window": iso(row["window_start"]), "attempts": attempts, "error": exc.reason},
                    ),
                )
            else:
                retry_at = now + int(backoff_seconds(attempts) * 1000)
                await db.execute(
                    "UPDATE billing_meter_outbox SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
                    (attempts, exc.reason, retry_at, row["id"]),
                )

        await self.ledger.write(record)
        log.warning(
            "meter event %d attempt %d failed: %s%s", row["id"], attempts, exc.reason, "; given up" if give_up else ""
        )

    # -- upkeep and views ----------------------------------------------------------------

    async def prune(self) -> int:
        """Sent rows older than Stripe would take again are no longer needed."""
        cutoff = self._now() - PRUNE_AFTER_MS

        async def prune(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "DELETE FROM billing_meter_outbox WHERE status = 'sent' AND window_start < ?", (cutoff,)
            )
            return cursor.rowcount

        return await self.ledger.write(prune)

    async def summary(self, account_id: str | None = None) -> dict:
        where, params = ("WHERE account_id = ?", (account_id,)) if account_id else ("", ())
        counts = {
            r["status"]: (r["n"], r["value"])
            for r in await self.ledger.fetchall(
                f"SELECT status, count(*) AS n, sum(value) AS value FROM billing_meter_outbox {where} GROUP BY status",
                params,
            )
        }
        last = await self.ledger.fetchone(
            f"SELECT max(sent_at) AS at FROM billing_meter_outbox {where}", params
        )
        error = await self.ledger.fetchone(
            f"""SELECT last_error, next_attempt_at FROM billing_meter_outbox
                {where} {'AND' if where else 'WHERE'} status = 'pending' AND last_error IS NOT NULL
                ORDER BY id LIMIT 1""",
            params,
        )
        return {
            "value": self.value,
            "pending": counts.get("pending", (0, 0))[0],
            "sent": counts.get("sent", (0, 0))[0],
            "failed": counts.get("failed", (0, 0))[0],
            "reported": counts.get("sent", (0, 0))[1] or 0,
            "unreported": (counts.get("pending", (0, 0))[1] or 0),
            "last_sent_at": iso(last["at"]) if last else None,
            "last_error": error["last_error"] if error else None,
            "next_attempt_at": iso(error["next_attempt_at"]) if error else None,
        }
