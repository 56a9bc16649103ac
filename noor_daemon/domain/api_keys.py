"""API keys: format, checksum and hashing. No I/O: the request path calls these per call.

A key is `sk-noor-` + 43 base62 characters (256 random bits) + a 6-character checksum.
The checksum lets a mistyped or forged key be refused before any lookup, and gives
secret scanners a pattern to match. Only the SHA-256 of a key is ever stored.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

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
