"""Retention: usage older than `[retention] usage_days` goes, and with it what it added to every rollup.

The cutoff is on an hour (`windows.retention_cutoff`): usage events and failed attempts before it
are deleted through `ledger.usage.delete_usage`/`delete_attempts`, which subtract exactly what they
removed from the hourly, daily and route rollups, so after every batch each rollup equals what remains
(the day the cutoff falls in keeps its later hours). The job deletes in small batches, one short
transaction each through the ledger's writer, and yields between batches, so the group-commit writer
(and with it every call waiting for its usage row) never waits behind more than one batch. It runs at
start and then hourly, and reports what it removed: an audit entry `retention.ran` and the `last_run`
record the admin API shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import aiosqlite

from noor_daemon.clock import Clock, iso
from noor_daemon.domain.windows import DAY_MS, HOUR_MS, retention_cutoff
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import delete_attempts, delete_usage

log = logging.getLogger(__name__)

BATCH = 1000
INTERVAL_S = 3600.0
LAST_RUN_KEY = "retention.last_run"


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
        before = retention_cutoff(int(self.clock.now() * 1000), self.usage_days)
        return Cutoffs(before, before - HOUR_MS)

    async def load(self) -> None:
        row = await self.ledger.fetchone("SELECT value FROM privacy_state WHERE key = ?", (LAST_RUN_KEY,))
        self.last_run = json.loads(row["value"]) if row else None

    async def preview(self) -> dict:
        """What a run would remove now, without removing it."""
        cut = self.cutoffs()
        events = await self.ledger.fetchone("SELECT count(*) FROM usage_events WHERE ts < ?", (cut.events_before,))
        hourly = await self.ledger.fetchone("SELECT count(*) FROM usage_hourly WHERE hour < ?", (cut.events_before,))
        return {
            "dry_run": True,
            "usage_days": self.usage_days,
            "cutoff": iso(cut.events_before),
            "usage_events": events[0] if events else 0,
            "usage_hourly": hourly[0] if hourly else 0,
        }

    async def _delete_batches(self, delete) -> tuple[int, int]:
        """Run `delete(db, limit)` (one batch in one transaction) until a batch comes back short."""
        removed = batches = 0
        while True:
            count = await self.ledger.write(lambda db: delete(db, self.batch))
            removed += count
            batches += 1
            if count < self.batch:
                return removed, batches
            await asyncio.sleep(0)  # let the usage writer (and everything else) in between batches

    async def _drop_empty_rollups(self, before: int) -> None:
        """Rollup rows before the cutoff that no fact backs any more (a ledger written before the facts were
        complete): with every fact there gone, they must go too."""

        async def drop(db: aiosqlite.Connection) -> None:
            await db.execute("DELETE FROM usage_hourly WHERE hour < ?", (before,))
            await db.execute("DELETE FROM route_hourly WHERE hour < ?", (before,))
            await db.execute("DELETE FROM usage_daily WHERE day < ?", (before - before % DAY_MS,))

        await self.ledger.write(drop)

    async def run(self, *, actor: str = "system") -> dict:
        """Delete what is past the limit; returns and records the report."""
        async with self._lock:
            started = time.perf_counter()
            cut = self.cutoffs()
            housekeeping = {}
            if self.before_run is not None:
                housekeeping = await self.ledger.write(self.before_run) or {}
            before = cut.events_before
            hourly_row = await self.ledger.fetchone("SELECT count(*) FROM usage_hourly WHERE hour < ?", (before,))
            hourly = hourly_row[0] if hourly_row else 0
            events, event_batches = await self._delete_batches(lambda db, n: delete_usage(db, "ts < ?", (before,), n))
            attempts, attempt_batches = await self._delete_batches(lambda db, n: delete_attempts(db, before, n))
            await self._drop_empty_rollups(before)
            report = {
                "dry_run": False,
                "ran_at": iso(int(self.clock.now() * 1000)),
                "actor": actor,
                "usage_days": self.usage_days,
                "cutoff": iso(cut.events_before),
                "usage_events": events,
                "usage_hourly": hourly,
                "route_attempts": attempts,
                "batches": event_batches + attempt_batches,
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
            "kept": "nothing older: usage events, failed attempts and every rollup hour before the cutoff go",
        }
