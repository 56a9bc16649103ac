"""API keys: format, checksum, hashing and the in-memory lookup the request path uses.

A key is `sk-noor-` + 43 base62 characters (256 random bits) + a 6-character checksum.
The checksum lets a mistyped or forged key be refused before any lookup, and gives
secret scanners a pattern to match. Only the SHA-256 of a key is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass, field

KEY_PREFIX = "sk-noor-"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 43  # 62**43 > 2**256
_CHECK_LEN = 6  # 62**6 > 2**32
KEY_LENGTH = len(KEY_PREFIX) + _BODY_LEN + _CHECK_LEN
DISPLAY_PREFIX_LEN = len(KEY_PREFIX) + 6


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECK_LEN)


_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}


def _checksum_matches(body: str, check: str) -> bool:
    """`_checksum(body) == check`, read the other way: decoding six digits is cheaper than encoding them.
    (The checksum is no secret, only a typo catcher: no constant-time compare is needed.)"""
    value = 0
    for c in check:
        value = value * 62 + _DIGIT[c]
    return value == zlib.crc32(body.encode("ascii"))


def generate_key() -> str:
    body = _base62(secrets.randbits(256), _BODY_LEN)
    return KEY_PREFIX + body + _checksum(body)


def well_formed(key: str) -> bool:
    """True when `key` has our shape and its checksum matches. No I/O."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    body = key[len(KEY_PREFIX) : len(KEY_PREFIX) + _BODY_LEN]
    check = key[-_CHECK_LEN:]
    # ASCII letters and digits are exactly base62's alphabet (and what `_checksum_matches` can decode).
    if not (body.isascii() and body.isalnum() and check.isascii() and check.isalnum()):
        return False
    return _checksum_matches(body, check)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LEN]


def new_id(kind: str) -> str:
    """Short random ids (`acct_…`, `key_…`): unguessable and safe to show."""
    return f"{kind}_{_base62(secrets.randbits(96), 16)}"


@dataclass(slots=True)
class Account:
    id: str
    email: str
    plan: str
    status: str = "active"  # active | suspended
    created_at: int = 0


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
