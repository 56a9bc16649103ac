"""Retention: usage events and per-account rollups (hourly, daily) older than `[retention] usage_days` go.

The job deletes in small batches, one short transaction each through the ledger's writer,
and yields between batches, so the group-commit writer (and with it every call waiting for
its usage row) never waits behind more than one batch. It runs at start and then hourly,
and reports what it removed: an audit entry `retention.ran` and the `last_run` record
the admin API shows. Rollups with no account identity (`route_hourly`, per provider and
model) are kept: routing learns from them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import aiosqlite

from noor_daemon.clock import Clock, iso
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import HOUR_MS

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
BATCH = 1000
INTERVAL_S = 3600.0
LAST_RUN_KEY = "retention.last_run"

_EVENTS_BATCH = """DELETE FROM usage_events WHERE id IN
    (SELECT id FROM usage_events WHERE ts < ? ORDER BY ts LIMIT ?)"""
_HOURLY_BATCH = """DELETE FROM usage_hourly WHERE (hour, account_id, key_id, model) IN
    (SELECT hour, account_id, key_id, model FROM usage_hourly WHERE hour <= ? LIMIT ?)"""
# A day row goes with the first of its hours: what is left of that day is read from `usage_hourly`.
_DAILY_BATCH = """DELETE FROM usage_daily WHERE (day, account_id, key_id, model) IN
    (SELECT day, account_id, key_id, model FROM usage_daily WHERE day <= ? LIMIT ?)"""


@dataclass(frozen=True)
class Cutoffs:
    events_before: int
    """Usage events with `ts` below this go."""
    hours_through: int
    """Rollup hours starting at or before this go: the whole hour is past the limit."""


class RetentionJob:
    def __init__(
        self,
        ledger: Ledger,
        audit: AuditLog,
        clock: Clock,
        usage_days: int,
        *,
        before_run=None,
    ) -> None:
        self.ledger = ledger
        self.audit = audit
        self.clock = clock
        self.usage_days = usage_days
        self.batch = BATCH
        self.interval = INTERVAL_S
        self.before_run = before_run
        """An optional `async fn(db)` run in the first transaction of each run (housekeeping of other tables)."""
        self._lock = asyncio.Lock()
        self.last_run: dict | None = None
        self.next_run_at: float | None = None

    def cutoffs(self) -> Cutoffs:
        now_ms = int(self.clock.now() * 1000)
        before = now_ms - self.usage_days * DAY_MS
        return Cutoffs(before, before - HOUR_MS)

    async def load(self) -> None:
        row = await self.ledger.fetchone("SELECT value FROM privacy_state WHERE key = ?", (LAST_RUN_KEY,))
        self.last_run = json.loads(row["value"]) if row else None

    async def preview(self) -> dict:
        """What a run would remove now, without removing it."""
        cut = self.cutoffs()
        events = await self.ledger.fetchone("SELECT count(*) FROM usage_events WHERE ts < ?", (cut.events_before,))
        hourly = await self.ledger.fetchone("SELECT count(*) FROM usage_hourly WHERE hour <= ?", (cut.hours_through,))
        return {
            "dry_run": True,
            "usage_days": self.usage_days,
            "cutoff": iso(cut.events_before),
            "usage_events": events[0] if events else 0,
            "usage_hourly": hourly[0] if hourly else 0,
        }

    async def _delete_batches(self, sql: str, bound: int) -> tuple[int, int]:
        removed = batches = 0
        while True:

            async def one(db: aiosqlite.Connection) -> int:
                cursor = await db.execute(sql, (bound, self.batch))
                return cursor.rowcount

            count = await self.ledger.write(one)
            removed += count
            batches += 1
            if count < self.batch:
                return removed, batches
            await asyncio.sleep(0)  # let the usage writer (and everything else) in between batches

    async def run(self, *, actor: str = "system") -> dict:
        """Delete what is past the limit; returns and records the report."""
        async with self._lock:
            started = time.perf_counter()
            cut = self.cutoffs()
            housekeeping = {}
            if self.before_run is not None:
                housekeeping = await self.ledger.write(self.before_run) or {}
            events, event_batches = await self._delete_batches(_EVENTS_BATCH, cut.events_before)
            hourly, hourly_batches = await self._delete_batches(_HOURLY_BATCH, cut.hours_through)
            _, daily_batches = await self._delete_batches(_DAILY_BATCH, cut.hours_through)
            report = {
                "dry_run": False,
                "ran_at": iso(int(self.clock.now() * 1000)),
                "actor": actor,
                "usage_days": self.usage_days,
                "cutoff": iso(cut.events_before),
                "usage_events": events,
                "usage_hourly": hourly,
                "batches": event_batches + hourly_batches + daily_batches,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                **housekeeping,
            }

            async def record(db: aiosqlite.Connection) -> None:
                await db.execute(
                    "INSERT INTO privacy_state (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (LAST_RUN_KEY, json.dumps(report, sort_keys=True)),
                )
                details = {k: report[k] for k in ("usage_days", "cutoff", "usage_events", "usage_hourly", "batches")}
                await self.audit.add_in(db, AuditEntry("retention.ran", actor, "retention", None, None, details))

            await self.ledger.write(record)
            self.last_run = report
            log.info(
                "retention removed %d usage events and %d hourly rollups older than %d days",
                events, hourly, self.usage_days,
            )
            return report

    async def loop(self) -> None:
        """At start, then every `interval` seconds."""
        while True:
            try:
                async with self.ledger.exclusive("retention") as mine:  # several daemons: one runs it
                    if mine:
                        await self.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("retention run failed: %s", type(exc).__name__)
            self.next_run_at = self.clock.now() + self.interval
            await asyncio.sleep(self.interval)

    def status(self) -> dict:
        cut = self.cutoffs()
        return {
            "usage_days": self.usage_days,
            "cutoff": iso(cut.events_before),
            "interval_seconds": self.interval,
            "batch_size": self.batch,
            "last_run": self.last_run,
            "next_run_at": iso(int(self.next_run_at * 1000)) if self.next_run_at else None,
            "kept": "route_hourly (per provider and model, no account identity) is kept for routing",
        }
