"""Privacy policy versions: published with an effective date, announced by mail to every account.

A material change takes effect no sooner than 14 days after it is published: the promise is
that people hear of it two weeks ahead and can leave before it applies.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiosqlite

from noor_daemon.clock import Clock, iso
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.mail import templates
from noor_daemon.mail.outbox import Outbox

NOTICE_DAYS = 14
NOTICE_BATCH = 200


class PolicyRefused(ValueError):
    """The version cannot be published as asked; the message says why, for a person."""


def parse_effective(value: str) -> int:
    """`YYYY-MM-DD` (midnight UTC) or an ISO 8601 time with an offset, as milliseconds."""
    try:
        if len(value) == 10:
            moment = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise PolicyRefused("`effective` needs a time zone, e.g. 2026-03-01T00:00:00Z, or a plain date.")
    except ValueError as exc:
        if isinstance(exc, PolicyRefused):
            raise
        raise PolicyRefused("`effective` must be a date (YYYY-MM-DD) or an ISO 8601 time.") from None
    return int(moment.timestamp() * 1000)


def earliest_material(now_ms: int) -> datetime:
    """The first midnight (UTC) at least 14 days after `now_ms`."""
    bound = datetime.fromtimestamp(now_ms / 1000, UTC) + timedelta(days=NOTICE_DAYS)
    midnight = bound.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == bound else midnight + timedelta(days=1)


def _view(row) -> dict:
    return {
        "version": row["version"],
        "published_at": iso(row["published_at"]),
        "effective_at": iso(row["effective_at"]),
        "summary": row["summary"],
        "material": bool(row["material"]),
        "url": row["url"],
        "notices": row["notices"],
    }


class Policies:
    def __init__(self, ledger: Ledger, clock: Clock, audit: AuditLog, outbox: Outbox) -> None:
        self.ledger = ledger
        self.clock = clock
        self.audit = audit
        self.outbox = outbox

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    def check(self, effective_at: int, material: bool) -> None:
        now = self._now()
        today = now - now % 86_400_000
        if effective_at < today:
            raise PolicyRefused(f"The effective date {iso(effective_at)} is in the past.")
        if material and effective_at < now + NOTICE_DAYS * 86_400_000:
            first = earliest_material(now)
            raise PolicyRefused(
                f"A material change must be announced at least {NOTICE_DAYS} days before it takes effect; "
                f"{iso(effective_at)} is too soon. The earliest effective date now is {first:%Y-%m-%d}. "
                "(A minor change, such as a clarification, can take effect sooner: --minor.)"
            )

    async def publish(
        self, *, effective_at: int, summary: str, material: bool, url: str | None = None, notify: bool = True,
        actor: str = "admin",
    ) -> dict:
        """Record the version and queue a notice to every account; returns the version with its notice count."""
        self.check(effective_at, material)
        now = self._now()

        async def insert(db: aiosqlite.Connection) -> int:
            async with db.execute("SELECT coalesce(max(version), 0) + 1 FROM policy_versions") as cursor:
                (version,) = await cursor.fetchone()
            await db.execute(
                """INSERT INTO policy_versions (version, published_at, effective_at, summary, material, url)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (version, now, effective_at, summary, int(material), url),
            )
            return version

        version = await self.ledger.write(insert)
        rendered = templates.policy_notice(
            version=version, summary=summary, effective_at=effective_at, material=material, url=url
        )
        notices = 0
        if notify:
            notices = await self._notify_all(rendered)

        async def finish(db: aiosqlite.Connection) -> None:
            await db.execute("UPDATE policy_versions SET notices = ? WHERE version = ?", (notices, version))
            await self.audit.add_in(
                db,
                AuditEntry(
                    "policy.published",
                    actor,
                    "policy",
                    str(version),
                    None,
                    {"effective_at": iso(effective_at), "material": material, "notices": notices},
                ),
            )

        await self.ledger.write(finish)
        row = await self.ledger.fetchone("SELECT * FROM policy_versions WHERE version = ?", (version,))
        return _view(row)

    async def _notify_all(self, rendered: templates.Rendered) -> int:
        """Queue the notice for every account, a batch per transaction so calls keep flowing meanwhile."""
        total = 0
        after = ""
        while True:
            accounts = await self.ledger.fetchall(
                "SELECT id, email FROM accounts WHERE id > ? ORDER BY id LIMIT ?", (after, NOTICE_BATCH)
            )
            if not accounts:
                return total

            async def queue(db: aiosqlite.Connection, batch=accounts) -> None:
                for account in batch:
                    await self.outbox.enqueue_in(db, rendered, account["email"], account_id=account["id"])

            await self.ledger.write(queue)
            total += len(accounts)
            after = accounts[-1]["id"]
            await asyncio.sleep(0)

    async def overview(self) -> dict:
        now = self._now()
        rows = await self.ledger.fetchall("SELECT * FROM policy_versions ORDER BY effective_at, version")
        past = [r for r in rows if r["effective_at"] <= now]
        current = max(past, key=lambda r: (r["effective_at"], r["version"])) if past else None
        return {
            "current": _view(current) if current else None,
            "upcoming": [_view(r) for r in rows if r["effective_at"] > now],
            "previous": [_view(r) for r in past if current is None or r["version"] != current["version"]],
            "notice_days": NOTICE_DAYS,
        }
