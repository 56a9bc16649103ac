"""Accounts and their API keys as plain types, and the in-memory `KeyRing` every request reads.

The bottom of the tree: the ledger stores these, the limits and the gateway read them, the admin
API and the data export show them. Nothing here does I/O.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from noor_daemon.domain.api_keys import hash_key, well_formed


@dataclass(slots=True)
class Account:
    id: str
    email: str
    plan: str
    status: str = "active"  # active | suspended
    created_at: int = 0
    limits: dict[str, float] = field(default_factory=dict)
    """This account's own limits and budgets, replacing its plan's of the same name (budgets in the currency)."""


@dataclass(slots=True)
class ApiKey:
    id: str
    account_id: str
    key_hash: str
    prefix: str
    name: str | None = None
    allowed_models: frozenset[str] | None = None
    created_at: int = 0
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None
    status: str = "active"  # active | suspended
    limits: dict[str, int] = field(default_factory=dict)
    """Per-key overrides of the plan's limits; tighter only."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class KeyRing:
    """Every live key and account, held in memory so a request never waits on the DB.

    The admin API updates this object in the same step that it commits a change, so a
    revocation or suspension takes effect on the very next request.
    """

    def __init__(self) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        self.keys: dict[str, ApiKey] = {}
        self.accounts: dict[str, Account] = {}
        self.dirty_last_used: set[str] = set()

    def put_account(self, account: Account) -> None:
        self.accounts[account.id] = account

    def drop_account(self, account_id: str) -> None:
        self.accounts.pop(account_id, None)
        for key in [k for k in self.keys.values() if k.account_id == account_id]:
            self.drop_key(key.id)

    def put_key(self, key: ApiKey) -> None:
        old = self.keys.get(key.id)
        if old is not None:
            self._by_hash.pop(old.key_hash, None)
        self.keys[key.id] = key
        if not key.revoked:
            self._by_hash[key.key_hash] = key

    def drop_key(self, key_id: str) -> None:
        key = self.keys.pop(key_id, None)
        if key is not None:
            self._by_hash.pop(key.key_hash, None)

    def lookup(self, presented: str) -> ApiKey | None:
        """The live key for `presented`, or None. Malformed keys never reach the table."""
        if not well_formed(presented):
            return None
        digest = hash_key(presented)
        key = self._by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            return None
        return key

    def touch(self, key: ApiKey, now_ms: int) -> None:
        """Record last use in memory; the ledger writer persists it in its next batch."""
        key.last_used_at = now_ms
        self.dirty_last_used.add(key.id)

    def drain_touches(self) -> list[tuple[int, str]]:
        """(last_used_at, key_id) pairs not yet written; the ledger writer takes them."""
        touched = [
            (self.keys[key_id].last_used_at, key_id) for key_id in self.dirty_last_used if key_id in self.keys
        ]
        self.dirty_last_used.clear()
        return touched
