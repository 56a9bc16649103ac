"""Accounts and API keys: the rows in the ledger and the in-memory `KeyRing`, kept in step.

Every change commits to SQLite first and then updates the KeyRing, so the request path
(which only reads the KeyRing) sees a revocation the moment the admin call returns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosqlite

from noor_daemon.clock import Clock
from noor_daemon.domain.emails import lookalike_key
from noor_daemon.domain.emails import normalize as normalize_email
from noor_daemon.domain.accounts import Account, ApiKey, KeyRing
from noor_daemon.domain.api_keys import display_prefix, generate_key, hash_key, new_id
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import delete_usage

log = logging.getLogger(__name__)

ERASE_BATCH = 5000


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


@dataclass(frozen=True)
class IssuedKey:
    """A key as returned once, at creation or rotation: the only time `secret` exists."""

    key: ApiKey
    secret: str
    previous_expires_at: int | None = None
    """After a rotation with a grace period: when the key it replaces stops working (ms)."""


def _account_from_row(row) -> Account:
    limits = json.loads(row["limits"]) if row["limits"] else {}
    return Account(id=row["id"], email=row["email"], plan=row["plan"], status=row["status"], created_at=row["created_at"],
                   limits=limits)


def _key_from_row(row) -> ApiKey:
    models = json.loads(row["allowed_models"]) if row["allowed_models"] else None
    return ApiKey(
        id=row["id"],
        account_id=row["account_id"],
        key_hash=row["key_hash"],
        prefix=row["prefix"],
        name=row["name"],
        allowed_models=frozenset(models) if models is not None else None,
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        status=row["status"],
        limits=json.loads(row["limits"]) if row["limits"] else {},
    )


class AccountStore:
    def __init__(self, ledger: Ledger, keyring: KeyRing, clock: Clock, audit: AuditLog) -> None:
        self.ledger = ledger
        self.keyring = keyring
        self.clock = clock
        self.audit = audit
        # Hooks (privacy, billing). The first three run inside the change's own transaction, so
        # what they write commits with it or not at all; `on_account_deleted` runs after the commit.
        self.on_created: list[Callable[[aiosqlite.Connection, Account, str], Awaitable[None]]] = []
        """(db, account, actor): e.g. queue the "account created" mail."""
        self.on_email_changed: list[Callable[[aiosqlite.Connection, Account, str, str], Awaitable[None]]] = []
        """(db, account as it was, new email, actor): e.g. the confirmation mail, the correction request."""
        self.on_erase: list[Callable[[aiosqlite.Connection, Account, list[tuple[str, str]], str], Awaitable[None]]] = []
        """(db, account, [(key id, key prefix)], actor), after its rows are gone: erase what else names it."""
        self.on_account_deleted: list[Callable[[Account], Awaitable[None]]] = []
        """(account), after the deletion committed: e.g. billing deletes the Stripe customer here."""

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    async def load(self) -> None:
        """Fill the KeyRing from the ledger at start: every account and unrevoked key."""
        for row in await self.ledger.fetchall("SELECT * FROM accounts"):
            self.keyring.put_account(_account_from_row(row))
        for row in await self.ledger.fetchall("SELECT * FROM api_keys WHERE revoked_at IS NULL"):
            self.keyring.put_key(_key_from_row(row))
        self.ledger.on_change(self.changed_elsewhere)

    async def changed_elsewhere(self, kind: str, ident: str) -> None:
        """Another daemon on the same database changed an account or key (`Ledger.announce`): take
        the row as it now is, so a revocation or suspension there is refused here too."""
        if kind == "all":  # the change feed was lost for a while: start over
            accounts = {r["id"]: _account_from_row(r) for r in await self.ledger.fetchall("SELECT * FROM accounts")}
            keys = {r["id"]: _key_from_row(r) for r in await self.ledger.fetchall("SELECT * FROM api_keys WHERE revoked_at IS NULL")}
            for gone in set(self.keyring.keys) - set(keys):
                self.keyring.drop_key(gone)
            for gone in set(self.keyring.accounts) - set(accounts):
                self.keyring.drop_account(gone)
            for account in accounts.values():
                self.keyring.put_account(account)
            for key in keys.values():
                self.keyring.put_key(key)
        elif kind == "account":
            row = await self.ledger.fetchone("SELECT * FROM accounts WHERE id = ?", (ident,))
            if row is None:
                self.keyring.drop_account(ident)
            else:
                self.keyring.put_account(_account_from_row(row))
        elif kind == "key":
            row = await self.ledger.fetchone("SELECT * FROM api_keys WHERE id = ?", (ident,))
            key = _key_from_row(row) if row is not None else None
            if key is None or key.revoked:
                self.keyring.drop_key(ident)
            else:
                self.keyring.put_key(key)

    # -- accounts ------------------------------------------------------------------

    def _checked_email(self, email: str, account_id: str | None = None) -> str:
        """`email` normalized (`domain.emails`); a Conflict when it reads the same as another account's."""
        email = normalize_email(email)
        key = lookalike_key(email)
        for other in self.keyring.accounts.values():
            if other.id != account_id and lookalike_key(other.email) == key:
                raise Conflict("an account with this email (or one that reads the same) already exists")
        return email

    async def create_account(self, email: str, plan: str, *, actor: str = "admin") -> Account:
        email = self._checked_email(email)
        account = Account(id=new_id("acct"), email=email, plan=plan, created_at=self._now())

        async def insert(db: aiosqlite.Connection) -> None:
            async with db.execute("SELECT 1 FROM accounts WHERE lower(email) = lower(?)", (email,)) as cur:
                if await cur.fetchone():
                    raise Conflict("an account with this email already exists")
            await db.execute(
                "INSERT INTO accounts (id, email, plan, status, created_at) VALUES (?, ?, ?, ?, ?)",
                (account.id, account.email, account.plan, account.status, account.created_at),
            )
            await self.ledger.announce(db, "account", account.id)
            await self.audit.add_in(
                db, AuditEntry("account.created", actor, "account", account.id, account.id, {"plan": plan})
            )
            for hook in self.on_created:
                await hook(db, account, actor)

        await self.ledger.write(insert)
        self.keyring.put_account(account)
        return account

    async def list_accounts(self) -> list[Account]:
        rows = await self.ledger.fetchall("SELECT * FROM accounts ORDER BY created_at, id")
        return [_account_from_row(r) for r in rows]

    async def get_account(self, ref: str) -> Account:
        """An account by id (`acct_…`) or by email."""
        where = "id = ?" if ref.startswith("acct_") else "lower(email) = lower(?)"  # emails match in any case
        row = await self.ledger.fetchone(f"SELECT * FROM accounts WHERE {where}", (ref,))
        if row is None:
            raise NotFound(f"no account {ref}")
        return _account_from_row(row)

    async def update_account(
        self,
        account_id: str,
        *,
        email: str | None = None,
        plan: str | None = None,
        status: str | None = None,
        limits: dict[str, float] | None = None,
        actor: str = "admin",
    ) -> Account:
        """Change what is given; `limits` replaces the account's own limits and budgets (`{}` clears them)."""
        account = await self.get_account(account_id)
        if email is not None:
            email = self._checked_email(email, account_id)
        changes: dict[str, object] = {k: v for k, v in (("email", email), ("plan", plan), ("status", status)) if v is not None}
        if limits is not None:
            changes["limits"] = limits
        if not changes:
            return account

        async def update(db: aiosqlite.Connection) -> None:
            if email is not None:
                async with db.execute("SELECT 1 FROM accounts WHERE lower(email) = lower(?) AND id != ?", (email, account.id)) as cur:
                    if await cur.fetchone():
                        raise Conflict("an account with this email already exists")
            assignments = ", ".join(f"{column} = ?" for column in changes)
            stored = [json.dumps(v, sort_keys=True) if k == "limits" and v else None if k == "limits" else v for k, v in changes.items()]
            await db.execute(f"UPDATE accounts SET {assignments} WHERE id = ?", (*stored, account.id))
            await self.ledger.announce(db, "account", account.id)
            # The audit entry says what changed, never the email itself.
            details = {k: v for k, v in changes.items() if k != "email"} | ({"email": "changed"} if email else {})
            action = {"suspended": "account.suspended", "active": "account.unsuspended"}.get(status or "", "account.updated")
            await self.audit.add_in(db, AuditEntry(action, actor, "account", account.id, account.id, details))
            if email is not None and email.lower() != account.email.lower():
                for hook in self.on_email_changed:
                    await hook(db, account, email, actor)

        await self.ledger.write(update)
        for column, value in changes.items():
            setattr(account, column, value)
        live = self.keyring.accounts.get(account.id)
        if live is not None:
            for column, value in changes.items():
                setattr(live, column, value)
        else:
            self.keyring.put_account(account)
        return account

    async def delete_account(self, account_id: str, *, actor: str = "admin") -> Account:
        """Remove the account, its keys, its usage rows and its rollups."""
        account = await self.get_account(account_id)
        self.keyring.drop_account(account.id)  # refuse its keys before the rows go

        async def delete(db: aiosqlite.Connection) -> None:
            async with db.execute("SELECT id, prefix FROM api_keys WHERE account_id = ?", (account.id,)) as cur:
                keys = [(row[0], row[1]) for row in await cur.fetchall()]
            while await delete_usage(db, "account_id = ?", (account.id,), ERASE_BATCH) == ERASE_BATCH:
                pass  # usage committed since the erasure's batches began, and what it added to every rollup
            await db.execute("DELETE FROM usage_hourly WHERE account_id = ?", (account.id,))
            await db.execute("DELETE FROM usage_daily WHERE account_id = ?", (account.id,))
            await db.execute("DELETE FROM api_keys WHERE account_id = ?", (account.id,))
            await db.execute("DELETE FROM accounts WHERE id = ?", (account.id,))
            await self.ledger.announce(db, "account", account.id)
            await self.audit.add_in(db, AuditEntry("account.deleted", actor, "account", account.id, account.id))
            for hook in self.on_erase:
                await hook(db, account, keys, actor)

        await self.ledger.write(delete)
        for callback in self.on_account_deleted:
            try:
                await callback(account)
            except Exception as exc:  # the deletion stands; a follow-up that failed says so in the log
                log.error("after deleting an account, %s failed: %s", getattr(callback, "__qualname__", "a hook"), type(exc).__name__)
        return account

    # -- keys ----------------------------------------------------------------------

    async def create_key(
        self,
        account_id: str,
        *,
        name: str | None = None,
        allowed_models: list[str] | None = None,
        expires_at: int | None = None,
        limits: dict[str, int] | None = None,
        actor: str = "admin",
    ) -> IssuedKey:
        account = await self.get_account(account_id)
        secret = generate_key()
        key = ApiKey(
            id=new_id("key"),
            account_id=account.id,
            key_hash=hash_key(secret),
            prefix=display_prefix(secret),
            name=name,
            allowed_models=frozenset(allowed_models) if allowed_models is not None else None,
            created_at=self._now(),
            expires_at=expires_at,
            limits=dict(limits or {}),
        )
        async def insert(db: aiosqlite.Connection) -> None:
            await self._insert_key(db, key)
            await self.ledger.announce(db, "key", key.id)
            await self.audit.add_in(db, AuditEntry("key.created", actor, "key", key.id, key.account_id, {"prefix": key.prefix}))

        await self.ledger.write(insert)
        self.keyring.put_key(key)
        return IssuedKey(key, secret)

    @staticmethod
    async def _insert_key(db: aiosqlite.Connection, key: ApiKey) -> None:
        await db.execute(
            """INSERT INTO api_keys (id, account_id, key_hash, prefix, name, allowed_models, limits,
                   status, created_at, expires_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                key.id,
                key.account_id,
                key.key_hash,
                key.prefix,
                key.name,
                json.dumps(sorted(key.allowed_models)) if key.allowed_models is not None else None,
                json.dumps(key.limits) if key.limits else None,
                key.status,
                key.created_at,
                key.expires_at,
            ),
        )

    async def list_keys(self, account_id: str | None = None) -> list[ApiKey]:
        if account_id:
            rows = await self.ledger.fetchall(
                "SELECT * FROM api_keys WHERE account_id = ? ORDER BY created_at, id", (account_id,)
            )
        else:
            rows = await self.ledger.fetchall("SELECT * FROM api_keys ORDER BY created_at, id")
        keys = [_key_from_row(r) for r in rows]
        for key in keys:  # last use is kept in memory between batches
            live = self.keyring.keys.get(key.id)
            if live is not None and live.last_used_at:
                key.last_used_at = live.last_used_at
        return keys

    async def get_key(self, key_id: str) -> ApiKey:
        row = await self.ledger.fetchone("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        if row is None:
            raise NotFound(f"no key {key_id}")
        return _key_from_row(row)

    async def revoke_key(self, key_id: str, *, actor: str = "admin") -> ApiKey:
        key = await self.get_key(key_id)
        if key.revoked:
            return key
        self.keyring.drop_key(key.id)  # refused from this instant
        key.revoked_at = self._now()

        async def revoke(db: aiosqlite.Connection) -> None:
            await db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (key.revoked_at, key.id))
            await self.ledger.announce(db, "key", key.id)
            await self.audit.add_in(db, AuditEntry("key.revoked", actor, "key", key.id, key.account_id, {"prefix": key.prefix}))

        await self.ledger.write(revoke)
        return key

    async def rotate_key(self, key_id: str, *, actor: str = "admin", grace_seconds: int | None = None) -> IssuedKey:
        """Issue a replacement of `key_id` with the same name, models and limits, and retire the old key.

        Without `grace_seconds` the old key is revoked at once; with it, the old key keeps working until
        the grace ends (its expiry is brought forward to then, never pushed back), so the programs using
        it can move to the replacement without a gap.
        """
        old = await self.get_key(key_id)
        if old.revoked:
            raise Conflict(f"key {key_id} is revoked; create a new one instead")
        secret = generate_key()
        new = ApiKey(
            id=new_id("key"),
            account_id=old.account_id,
            key_hash=hash_key(secret),
            prefix=display_prefix(secret),
            name=old.name,
            allowed_models=old.allowed_models,
            created_at=self._now(),
            expires_at=old.expires_at,
            limits=old.limits,
            status=old.status,
        )
        grace_until = new.created_at + grace_seconds * 1000 if grace_seconds else None
        if grace_until is not None and old.expires_at is not None:
            grace_until = min(grace_until, old.expires_at)
        if grace_until is None:
            self.keyring.drop_key(old.id)  # refused from this instant
        details = {"replacement": new.id, "prefix": new.prefix} | ({"grace_seconds": grace_seconds} if grace_until else {})

        async def swap(db: aiosqlite.Connection) -> None:
            if grace_until is None:
                await db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (new.created_at, old.id))
            else:
                await db.execute("UPDATE api_keys SET expires_at = ? WHERE id = ?", (grace_until, old.id))
            await self._insert_key(db, new)
            await self.ledger.announce(db, "key", old.id)
            await self.ledger.announce(db, "key", new.id)
            await self.audit.add_in(db, AuditEntry("key.rotated", actor, "key", old.id, old.account_id, details))

        await self.ledger.write(swap)
        if grace_until is not None:
            live = self.keyring.keys.get(old.id)
            if live is not None:
                live.expires_at = grace_until  # the request path refuses it from then on
        self.keyring.put_key(new)
        return IssuedKey(new, secret, grace_until)

    async def set_key_limits(self, key_id: str, limits: dict[str, int], *, actor: str = "admin") -> ApiKey:
        """Replace a key's own limit overrides (its account's plan still applies on top)."""
        key = await self.get_key(key_id)

        async def update(db: aiosqlite.Connection) -> None:
            await db.execute("UPDATE api_keys SET limits = ? WHERE id = ?", (json.dumps(limits) if limits else None, key.id))
            await self.ledger.announce(db, "key", key.id)
            await self.audit.add_in(db, AuditEntry("key.limits_changed", actor, "key", key.id, key.account_id, {"limits": limits}))

        await self.ledger.write(update)
        key.limits = dict(limits)
        live = self.keyring.keys.get(key.id)
        if live is not None:
            live.limits = dict(limits)
        return key

    async def set_key_status(self, key_id: str, status: str, *, actor: str = "admin", reason: str | None = None) -> ApiKey:
        key = await self.get_key(key_id)

        async def update(db: aiosqlite.Connection) -> None:
            await db.execute("UPDATE api_keys SET status = ? WHERE id = ?", (status, key.id))
            await self.ledger.announce(db, "key", key.id)
            details = {"status": status} | ({"reason": reason} if reason else {})
            await self.audit.add_in(db, AuditEntry(f"key.{'suspended' if status == 'suspended' else 'unsuspended'}", actor, "key", key.id, key.account_id, details))

        await self.ledger.write(update)
        key.status = status
        live = self.keyring.keys.get(key.id)
        if live is not None:
            live.status = status
        return key
