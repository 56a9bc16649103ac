"""API keys: format, checksum, entropy, uniqueness, and storage as SHA-256 only."""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3

import aiohttp
import openai
import pytest
from gateway_helpers import openai_client
from hypothesis import given, settings
from hypothesis import strategies as st

from noor_daemon.domain import accounts as accounts_module
from noor_daemon.domain import api_keys as auth
from noor_daemon.domain.accounts import KeyRing
from noor_daemon.domain.api_keys import KEY_LENGTH, KEY_PREFIX, generate_key, hash_key, well_formed
from noor_daemon.state import KEYRING

KEY_PATTERN = re.compile(r"^sk-noor-[0-9A-Za-z]{43}[0-9A-Za-z]{6}$")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def test_format():
    key = generate_key()
    assert KEY_PATTERN.match(key), key
    assert len(key) == KEY_LENGTH == 57
    assert well_formed(key)


@pytest.mark.parametrize("attempt", range(3))
def test_every_single_character_change_is_rejected(attempt):
    """Exhaustively: each position after the prefix, each other base62 character."""
    key = generate_key()
    for position in range(len(KEY_PREFIX), len(key)):
        for char in BASE62:
            if char != key[position]:
                changed = key[:position] + char + key[position + 1 :]
                assert not well_formed(changed), (position, char)


def test_adjacent_swaps_in_the_secret_are_rejected():
    key = generate_key()
    for i in range(len(KEY_PREFIX), len(KEY_PREFIX) + 42):
        if key[i] != key[i + 1]:
            swapped = key[:i] + key[i + 1] + key[i] + key[i + 2 :]
            assert not well_formed(swapped), i


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0, max_value=KEY_LENGTH - 1), char=st.characters())
def test_any_other_character_anywhere_is_rejected_without_crashing(position, char):
    key = generate_key()
    if char == key[position]:
        return
    assert well_formed(key[:position] + char + key[position + 1 :]) is False


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_is_not_a_key(text):
    assert well_formed(text) is False
    assert well_formed(KEY_PREFIX + text) is False


def test_wrong_length_and_prefix_are_rejected():
    key = generate_key()
    assert not well_formed(key[:-1])
    assert not well_formed(key + "a")
    assert not well_formed("sk-nooR-" + key[8:])
    assert not well_formed(" " + key[1:])


def test_keys_are_unique_and_carry_at_least_190_random_bits():
    keys = [generate_key() for _ in range(3000)]
    assert len(set(keys)) == len(keys)
    bodies = [k[len(KEY_PREFIX) : len(KEY_PREFIX) + 43] for k in keys]
    # Every body position but the first takes every base62 value across 3000 keys: each carries
    # ~log2(62) bits, so the body carries at least 42 * 5.95 ≈ 250 bits. (Missing a value by
    # chance at one position: 62 * (61/62)**3000 ≈ 1e-19.)
    for position in range(1, 43):
        assert {b[position] for b in bodies} == set(BASE62), position
    assert 42 * math.log2(62) >= 190


def test_a_malformed_key_is_refused_before_any_hashing(monkeypatch):
    ring = KeyRing()
    hashed: list[str] = []
    real_hash = auth.hash_key
    monkeypatch.setattr(accounts_module, "hash_key", lambda k: hashed.append(k) or real_hash(k))
    key = generate_key()
    broken = key[:20] + ("x" if key[20] != "x" else "y") + key[21:]
    assert ring.lookup(broken) is None
    assert ring.lookup("sk-noor-short") is None
    assert hashed == []
    assert ring.lookup(key) is None  # well formed but unknown: this one is hashed and looked up
    assert hashed == [key]


def test_hash_is_sha256_hex():
    key = generate_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()


# -- in the daemon -------------------------------------------------------------------------------


@pytest.mark.sqlite_file
async def test_keys_are_stored_as_hashes_only(daemon):
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.post(f"{daemon.url}/admin/v1/accounts", json={"email": "keys@example.com"}) as r:
            assert r.status == 201
        async with http.post(f"{daemon.url}/admin/v1/keys", json={"account": "keys@example.com", "name": "laptop"}) as r:
            assert r.status == 201
            created = await r.json()
        key = created["key"]
        assert KEY_PATTERN.match(key)
        assert created["prefix"] == key[:14] and "key_hash" not in created
        # Never shown again: not in the list, not in the key's own view.
        async with http.get(f"{daemon.url}/admin/v1/keys") as r:
            listing = await r.text()
        async with http.get(f"{daemon.url}/admin/v1/keys/{created['id']}") as r:
            single = await r.text()
    for text in (listing, single):
        assert key not in text and key[14:] not in text
        assert hash_key(key) not in text, "the hash stays inside the daemon too"

    db = sqlite3.connect(f"file:{daemon.data_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        [row] = [dict(r) for r in db.execute("SELECT * FROM api_keys WHERE id = ?", (created["id"],))]
    finally:
        db.close()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:14]
    assert all(key[14:] not in str(value) for value in row.values())

    async with openai_client(daemon, key) as client:  # and the key works
        await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])


async def test_rotation_issues_a_new_key_and_refuses_the_old(daemon):
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        await http.post(f"{daemon.url}/admin/v1/accounts", json={"email": "rotate@example.com"})
        async with http.post(f"{daemon.url}/admin/v1/keys", json={"account": "rotate@example.com"}) as r:
            old = await r.json()
        async with http.post(f"{daemon.url}/admin/v1/keys/{old['id']}/rotate") as r:
            assert r.status == 201
            new = await r.json()
    assert new["key"] != old["key"] and KEY_PATTERN.match(new["key"])
    async with openai_client(daemon, old["key"]) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    async with openai_client(daemon, new["key"]) as client:
        assert (await client.models.list()).data


@pytest.mark.parametrize("tail", ["é", "\u00ff", "\u2603"])
async def test_a_key_with_non_ascii_characters_is_a_401_not_a_crash(daemon, tail):
    key = await daemon.create_key("unicode@example.com")
    forged = key[:-1] + tail
    assert daemon.app[KEYRING].lookup(forged) is None
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{daemon.base_url}/chat/completions",
            json={"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": forged},
        ) as r:
            assert r.status == 401
            body = await r.json()
    assert body["error"]["code"] == "invalid_api_key"
    rows = await daemon.usage_rows()
    assert rows[-1]["status"] == 401
