"""Data rights wired into the daemon: export bookkeeping, correction, erasure, requests, retention, policies.

`app.py` builds the mail outbox and this service and hooks it into the `AccountStore` (so
every path that creates, corrects or deletes an account does the whole job); `ctx` runs the
mail sender and the retention job. The /v1/me routes are in `selfservice/privacy.py`.

Erasure, in one transaction after the account's rows are gone (`AccountStore.on_erase`):
audit entries about the account or its keys are rewritten to name the account's pseudonym
(a salted hash of its email) and lose any detail naming a key; its privacy requests move
to the pseudonym; its outbox rows go; the deletion request is completed; and, when SMTP is
configured, a "deletion completed" notice is queued as a `forget` row. After the commit
its Maildir messages are removed and the WAL is truncated; once the notice is sent its row
is removed and the WAL truncated again. With no SMTP configured the notice is not written:
the local Maildir is this machine's storage, and keeping the address there would break
the erasure (the response and the audit entry say `"notice": "skipped"`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
from aiohttp import web

from noor_daemon.clock import Clock, iso
from noor_daemon.config import Config
from noor_daemon.domain.accounts import Account, KeyRing
from noor_daemon.domain.windows import retention_cutoff
from noor_daemon.ledger.accounts import AccountStore, NotFound
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import delete_usage
from noor_daemon.mail import templates
from noor_daemon.mail.outbox import Outbox
from noor_daemon.mail.senders import MaildirSender, SmtpSender
from noor_daemon.privacy.policies import Policies
from noor_daemon.privacy.requests import PrivacyRequests, source_of
from noor_daemon.privacy.retention import RetentionJob
from noor_daemon.secret_store import resolve

log = logging.getLogger(__name__)

SALT_KEY = "pseudonym.salt"
CONFIRM_TTL_MS = 24 * 3_600_000
ERASE_BATCH = 1000
ERASED = "[erased]"
MAILDIR = "maildir"
LOCAL_SENDER = "noreply@localhost"

ExportSection = Callable[[Account], Awaitable[Any]]


class InvalidToken(ValueError):
    """A deletion confirmation token that is wrong, used, or expired."""


@dataclass
class Erasure:
    """What an erasure did, for the caller's answer."""

    account_id: str
    pseudonym: str
    request_id: int = 0
    notice: str = "skipped"
    maildir_keys: list[str] = field(default_factory=list)
    needles: list[bytes] = field(default_factory=list)

    def json(self) -> dict:
        return {
            "id": self.account_id,
            "deleted": True,
            "pseudonym": self.pseudonym,
            "request_id": self.request_id,
            "notice": self.notice,
        }


def _scrub(value: Any, needles: list[str]) -> Any:
    """`value` with every string that contains one of `needles` (case-insensitively) replaced."""
    if isinstance(value, str):
        low = value.lower()
        return ERASED if any(n in low for n in needles) else value
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, needles) for k, v in value.items()}
    return value


class PrivacyService:
    def __init__(
        self,
        *,
        config: Config,
        ledger: Ledger,
        keyring: KeyRing,
        accounts: AccountStore,
        audit: AuditLog,
        clock: Clock,
        outbox: Outbox,
        data_dir: Path,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.ledger = ledger
        self.keyring = keyring
        self.accounts = accounts
        self.audit = audit
        self.clock = clock
        self.outbox = outbox
        self.requests = PrivacyRequests(ledger, clock)
        self.retention = RetentionJob(
            ledger, audit, clock, config.retention.usage_days, before_run=self._housekeeping
        )
        self.policies = Policies(ledger, clock, audit, outbox)
        self.export_sections: dict[str, ExportSection] = {}
        """Extra top-level sections of a JSON export, by name (`quota` is filled by the limits package)."""
        self._salt: bytes | None = None
        self._erasures: dict[str, Erasure] = {}
        """Erasures committed or about to be, by account id, until their after-commit step ran."""
        self._waiting: dict[str, Erasure | None] = {}

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    # -- lifecycle -----------------------------------------------------------------

    async def load(self) -> None:
        """The pseudonym salt (generated once, kept in the ledger) and the last retention run."""

        async def ensure_salt(db: aiosqlite.Connection) -> str:
            await db.execute(
                "INSERT OR IGNORE INTO privacy_state (key, value) VALUES (?, ?)", (SALT_KEY, secrets.token_hex(32))
            )
            async with db.execute("SELECT value FROM privacy_state WHERE key = ?", (SALT_KEY,)) as cursor:
                (value,) = await cursor.fetchone()
            return value

        self._salt = bytes.fromhex(await self.ledger.write(ensure_salt))
        await self.retention.load()

    def prepare_reload(self, config: Config) -> Callable[[], None]:
        """For a config reload: check the new `[smtp]` (resolving its password) now, and return the
        function that switches mail delivery and the retention limit over once everything is checked."""
        sender = build_sender(config, self.data_dir) if config.smtp != self.config.smtp else None

        def apply() -> None:
            self.config = config
            self.retention.usage_days = config.retention.usage_days
            if sender is not None:
                self.outbox.sender, self.outbox.from_address = sender
                self.outbox.wake()

        return apply

    def hook_into(self, store: AccountStore) -> None:
        store.on_created.append(self._on_created)
        store.on_email_changed.append(self._on_email_changed)
        store.on_erase.append(self._on_erase)
        store.on_account_deleted.append(self._after_erase)

    # -- pseudonyms ----------------------------------------------------------------

    def pseudonym(self, email: str) -> str:
        """`anon_` + a salted hash of the email: names an erased account without naming its person."""
        assert self._salt is not None, "privacy service not loaded"
        digest = hmac.new(self._salt, email.strip().lower().encode(), hashlib.sha256).hexdigest()
        return f"anon_{digest[:32]}"

    async def account_ref(self, ref: str) -> str:
        """An account id for `ref` (id or email); for the email of an erased account, its pseudonym."""
        if ref.startswith(("acct_", "anon_")):
            return ref
        try:
            return (await self.accounts.get_account(ref)).id
        except LookupError:
            return self.pseudonym(ref)

    # -- account hooks (inside the AccountStore's transactions) ---------------------

    async def _on_created(self, db: aiosqlite.Connection, account: Account, actor: str) -> None:
        rendered = templates.account_created(plan=account.plan, created_at=account.created_at)
        await self.outbox.enqueue_in(db, rendered, account.email, account_id=account.id)

    async def _on_email_changed(self, db: aiosqlite.Connection, account: Account, new_email: str, actor: str) -> None:
        request_id = await self.requests.fulfil_in(db, "correction", account.id, source_of(actor))
        await self.outbox.enqueue_in(
            db, templates.email_changed(changed_at=self._now()), new_email, account_id=account.id
        )
        await self.audit.add_in(
            db,
            AuditEntry(
                "privacy.corrected", actor, "account", account.id, account.id, {"field": "email", "request": request_id}
            ),
        )

    async def _on_erase(
        self, db: aiosqlite.Connection, account: Account, keys: list[tuple[str, str]], actor: str
    ) -> None:
        pseudonym = self.pseudonym(account.email)
        key_ids = [k for k, _ in keys]
        idents = [account.id, *key_ids]
        needles = [n.lower() for n in (account.id, account.email, *key_ids, *(p for _, p in keys)) if n]
        erasure = Erasure(account.id, pseudonym, needles=[account.email.encode()])

        # The audit log: entries about the account or its keys now name the pseudonym only.
        marks = ", ".join("?" for _ in idents)
        mentions = " OR ".join("instr(lower(details), ?) > 0" for _ in needles)
        async with db.execute(
            f"""SELECT id, account_id, target_id, details FROM audit_log
                WHERE account_id IN ({marks}) OR target_id IN ({marks}) OR {mentions}""",
            (*idents, *idents, *needles),
        ) as cursor:
            rows = await cursor.fetchall()
        for entry_id, account_id, target_id, details in rows:
            scrubbed = json.dumps(_scrub(json.loads(details), needles), sort_keys=True) if details else None
            await db.execute(
                "UPDATE audit_log SET account_id = ?, target_id = ?, details = ? WHERE id = ?",
                (
                    pseudonym if account_id in idents else account_id,
                    pseudonym if target_id in idents else target_id,
                    scrubbed,
                    entry_id,
                ),
            )

        # Privacy requests: named by the pseudonym; the deletion one completed, others moot.
        await db.execute("UPDATE privacy_requests SET account_id = ? WHERE account_id = ?", (pseudonym, account.id))
        async with db.execute("SELECT id, note FROM privacy_requests WHERE account_id = ? AND note IS NOT NULL", (pseudonym,)) as cursor:
            for request_id, note in await cursor.fetchall():
                if any(n in note.lower() for n in needles):
                    await db.execute("UPDATE privacy_requests SET note = ? WHERE id = ?", (ERASED, request_id))
        erasure.request_id = await self.requests.fulfil_in(db, "deletion", pseudonym, source_of(actor))
        await db.execute(
            """UPDATE privacy_requests SET status = 'cancelled', confirm_hash = NULL, confirm_expires_at = NULL,
                   note = coalesce(note, 'account deleted') WHERE account_id = ? AND status = 'open'""",
            (pseudonym,),
        )

        # Mail: the account's messages go, queued or sent; the notice goes out once, then is forgotten.
        erasure.maildir_keys = await self.outbox.erase_account_in(db, account.id)
        await db.execute(
            "DELETE FROM mail_outbox WHERE lower(recipient) = lower(?) AND forget = 0", (account.email,)
        )
        if self.outbox.smtp:
            rendered = templates.deletion_completed(deleted_at=self._now())
            await self.outbox.enqueue_in(db, rendered, account.email, account_id=None, forget=True)
            erasure.notice = "queued"

        await self.audit.add_in(
            db,
            AuditEntry(
                "privacy.erased",
                actor,
                "account",
                pseudonym,
                pseudonym,
                {"request": erasure.request_id, "keys": len(keys), "notice": erasure.notice},
            ),
        )
        self._erasures[account.id] = erasure

    async def _after_erase(self, account: Account) -> None:
        """After the commit: the account's Maildir messages, and the old page images in the WAL."""
        erasure = self._erasures.pop(account.id, None)
        if erasure is None:
            return
        if isinstance(self.outbox.sender, MaildirSender):
            async with self.outbox.delivering:  # no message of the account is being written meanwhile
                removed = await asyncio.to_thread(self.outbox.sender.erase, erasure.maildir_keys, erasure.needles)
            log.info("erasure removed %d Maildir messages", removed)
        erasure.maildir_keys, erasure.needles = [], []
        if account.id in self._waiting:
            self._waiting[account.id] = erasure
        await self.outbox.checkpoint()
        self.outbox.wake()

    # -- data rights -----------------------------------------------------------------

    async def delete_account(self, ref: str, *, actor: str = "admin") -> Erasure:
        """Erase an account. Its keys are refused at once; its usage rows go in small batches first,
        so a big account never holds the writer for long; the rest goes in one transaction."""
        account = await self.accounts.get_account(ref)
        self.keyring.drop_account(account.id)
        while True:  # its usage, and what it added to every rollup (`delete_usage` subtracts it)
            batch = lambda db: delete_usage(db, "account_id = ?", (account.id,), ERASE_BATCH)  # noqa: E731
            if await self.ledger.write(batch) < ERASE_BATCH:
                break
            await asyncio.sleep(0)
        self._waiting[account.id] = None
        try:
            await self.accounts.delete_account(account.id, actor=actor)
            erasure = self._waiting.get(account.id)
        finally:
            self._waiting.pop(account.id, None)
            self._erasures.pop(account.id, None)
        return erasure or Erasure(account.id, self.pseudonym(account.email))

    async def request_deletion(self, account: Account) -> dict:
        """A key holder asks for deletion: a token, valid 24 hours, that a second call must present."""
        token = "noor-delete-" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self._now()
        expires = now + CONFIRM_TTL_MS

        async def record(db: aiosqlite.Connection) -> int:
            async with db.execute(
                """SELECT id FROM privacy_requests WHERE kind = 'deletion' AND account_id = ? AND status = 'open'
                   AND confirm_expires_at > ? ORDER BY id LIMIT 1""",
                (account.id, now),
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None:  # asked again: a fresh token replaces the old one
                request_id = row[0]
                await db.execute(
                    "UPDATE privacy_requests SET confirm_hash = ?, confirm_expires_at = ? WHERE id = ?",
                    (digest, expires, request_id),
                )
            else:
                request_id = await self.requests.open_in(
                    db, "deletion", account.id, "self", confirm_hash=digest, confirm_expires_at=expires
                )
            await self.audit.add_in(
                db,
                AuditEntry(
                    "privacy.deletion_requested", "self", "account", account.id, account.id,
                    {"request": request_id, "confirm_by": iso(expires)},
                ),
            )
            return request_id

        request_id = await self.ledger.write(record)
        return {"request_id": request_id, "token": token, "expires_at": iso(expires)}

    async def confirm_deletion(self, account: Account, token: str) -> Erasure:
        digest = hashlib.sha256(token.encode()).hexdigest()
        row = await self.ledger.fetchone(
            """SELECT id, confirm_expires_at FROM privacy_requests
               WHERE confirm_hash = ? AND account_id = ? AND status = 'open'""",
            (digest, account.id),
        )
        if row is None:
            raise InvalidToken("This confirmation token is not valid for your account. Request a new one with POST /v1/me/deletion.")
        if row["confirm_expires_at"] <= self._now():
            raise InvalidToken("This confirmation token has expired. Request a new one with POST /v1/me/deletion.")
        try:
            return await self.delete_account(account.id, actor="self")
        except NotFound:  # a second confirmation racing the first
            raise InvalidToken("This account has already been deleted.") from None

    async def export_extra(self, account: Account) -> dict:
        """The small sections of a JSON export: retention, quota state, privacy requests."""
        extra: dict[str, Any] = {
            "retention": {"usage_days": self.retention.usage_days, "usage_events_since": iso(self.export_since())},
            "quota": None,
        }
        for name, section in self.export_sections.items():
            try:
                extra[name] = await section(account)
            except Exception as exc:  # a section that fails must not fail the export
                log.error("export section %s failed: %s", name, type(exc).__name__)
                extra[name] = None
        extra["privacy_requests"] = await self.requests.for_account(account.id)
        return extra

    def export_since(self) -> int:
        """The events an export holds: those within retention (`windows.retention_cutoff`), as retention keeps them."""
        return retention_cutoff(self._now(), self.retention.usage_days)

    async def record_export(self, account: Account, *, fmt: str, events: int, actor: str) -> int:
        """An export delivered: the access request it answers is completed and the export audited."""

        async def record(db: aiosqlite.Connection) -> int:
            request_id = await self.requests.fulfil_in(db, "access", account.id, source_of(actor))
            await self.audit.add_in(
                db,
                AuditEntry(
                    "privacy.exported", actor, "account", account.id, account.id,
                    {"format": fmt, "events": events, "request": request_id},
                ),
            )
            return request_id

        return await self.ledger.write(record)

    async def record_request(self, kind: str, account_id: str, *, note: str | None, actor: str) -> dict:
        async def record(db: aiosqlite.Connection) -> int:
            request_id = await self.requests.open_in(db, kind, account_id, source_of(actor), note=note)
            await self.audit.add_in(
                db, AuditEntry("privacy.request_recorded", actor, "privacy_request", str(request_id), account_id, {"kind": kind})
            )
            return request_id

        return await self.requests.get(await self.ledger.write(record))

    async def complete_request(self, request_id: int, *, note: str | None, actor: str) -> dict:
        request = await self.requests.get(request_id)

        async def complete(db: aiosqlite.Connection) -> None:
            await self.requests.complete_in(db, request_id, note)
            await self.audit.add_in(
                db,
                AuditEntry(
                    "privacy.request_completed", actor, "privacy_request", str(request_id), request["account_id"],
                    {"kind": request["kind"]},
                ),
            )

        await self.ledger.write(complete)
        return await self.requests.get(request_id)

    async def _housekeeping(self, db: aiosqlite.Connection) -> dict:
        return {"expired_confirmations": await self.requests.cancel_expired_in(db)}

    # -- background ------------------------------------------------------------------

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """`cleanup_ctx`: after the ledger opened, load, then run the mail sender and the retention job."""
        await self.load()
        tasks = [
            asyncio.create_task(self.outbox.run(), name="mail-outbox"),
            asyncio.create_task(self.retention.loop(), name="retention"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass



def build_sender(config: Config, data_dir: Path) -> tuple[SmtpSender | MaildirSender, str]:
    """SMTP when `[smtp]` is configured (its password resolved now), else the Maildir; and the From address."""
    if config.smtp is not None:
        password = resolve(config.smtp.password, what="[smtp] password")
        return SmtpSender(config.smtp, password), config.smtp.from_address
    return MaildirSender(data_dir / MAILDIR), LOCAL_SENDER
