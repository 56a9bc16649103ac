"""The storage interface, one suite for both engines: SQLite (a file) and PostgreSQL (the local server).

Every test runs twice, `[sqlite]` and `[postgresql]`; the rest of the suite runs on PostgreSQL too
when `NOOR_TEST_STORAGE=postgresql` (`.ci/run` does both).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pg_helpers
import pytest

from noor_daemon.clock import ManualClock
from noor_daemon.config import StorageConfig
from noor_daemon.domain.accounts import KeyRing
from noor_daemon.ledger import ledger_for
from noor_daemon.ledger.accounts import AccountStore, Conflict
from noor_daemon.ledger.audit import AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.schema import SCHEMA_VERSION
from noor_daemon.ledger.usage import HOUR_MS, RouteSample, UsageEvent

ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(params=ENGINES)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageConfig]:
    if request.param == "sqlite":
        yield StorageConfig()
    else:
        async with pg_helpers.fresh_database() as url:
            yield StorageConfig(url=url)


async def opened(storage: StorageConfig, tmp_path: Path) -> Ledger:
    ledger = ledger_for(storage, tmp_path / "ledger.sqlite3")
    await ledger.open()
    return ledger


def event(ts: int, **fields) -> UsageEvent:
    base = dict(ts=ts, model="gpt-x", endpoint="chat.completions", status=200, latency_ms=12.5,
                account_id="acct_a", key_id="key_a", provider="p", prompt_tokens=10, completion_tokens=5)
    return UsageEvent(**(base | fields))


async def test_batches_commit_rows_and_rollups_exactly(storage, tmp_path):
    ledger = await opened(storage, tmp_path)
    try:
        hour = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS
        events = [event(hour + i, prompt_tokens=i, status=500 if i % 10 == 0 else 200) for i in range(500)]
        await asyncio.gather(*(ledger.record(e) for e in events))
        ledger.note_attempt(RouteSample(ts=hour, provider="p", model="gpt-x", status=503, latency_ms=3.0))
        await ledger.record(event(hour + HOUR_MS, prompt_tokens=7))
        (count, tokens) = tuple(await ledger.fetchone("SELECT count(*), sum(prompt_tokens) FROM usage_events"))
        assert (count, tokens) == (501, sum(range(500)) + 7)
        rollup = await ledger.fetchall(
            "SELECT hour, requests, errors, prompt_tokens, completion_tokens FROM usage_hourly ORDER BY hour"
        )
        assert [tuple(r) for r in rollup] == [(hour, 500, 50, sum(range(500)), 2500), (hour + HOUR_MS, 1, 0, 7, 5)]
        assert all(type(v) is int for v in rollup[0])  # sums are numbers on both engines, not Decimals
        routes = await ledger.fetchone("SELECT requests, errors FROM route_hourly WHERE hour = ?", (hour,))
        assert tuple(routes) == (501, 51)  # the abandoned attempt counts for the route, not as usage
        assert ledger.events_committed == 501
    finally:
        await ledger.close()


async def test_writes_are_transactions_with_lastrowid_and_rowcount(storage, tmp_path):
    ledger = await opened(storage, tmp_path)
    try:
        async def insert(db) -> int:
            cursor = await db.execute("INSERT INTO audit_log (ts, actor, action) VALUES (?, ?, ?)", (1, "me", "a"))
            await db.execute("INSERT INTO audit_log (ts, actor, action) VALUES (?, ?, ?)", (2, "me", "b"))
            return cursor.lastrowid

        first = await ledger.write(insert)
        assert first == (await ledger.fetchone("SELECT min(id) FROM audit_log"))[0]

        async def fails(db) -> None:
            await db.execute("INSERT INTO audit_log (ts, actor, action) VALUES (?, ?, ?)", (3, "me", "c"))
            raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await ledger.write(fails)
        assert (await ledger.fetchone("SELECT count(*) FROM audit_log"))[0] == 2

        async def ignore_twice(db) -> tuple[int, int]:
            sql = "INSERT OR IGNORE INTO privacy_state (key, value) VALUES (?, ?)"
            return (await db.execute(sql, ("salt", "x"))).rowcount, (await db.execute(sql, ("salt", "y"))).rowcount

        assert await ledger.write(ignore_twice) == (1, 0)

        async def delete(db) -> int:
            return (await db.execute("DELETE FROM audit_log WHERE actor = ?", ("me",))).rowcount

        assert await ledger.write(delete) == 2
    finally:
        await ledger.close()


async def test_accounts_and_keys_round_trip_with_case_insensitive_emails(storage, tmp_path):
    ledger = await opened(storage, tmp_path)
    try:
        clock = ManualClock(start=1_700_000_000)
        store = AccountStore(ledger, KeyRing(), clock, AuditLog(ledger, clock))
        account = await store.create_account("Dev@Example.com", "free")
        with pytest.raises(Conflict):
            await store.create_account("dev@example.COM", "free")
        assert (await store.get_account("DEV@example.com")).id == account.id
        issued = await store.create_key(account.id, name="ci", allowed_models=["a", "b"], limits={"requests_per_minute": 5})
        assert store.keyring.lookup(issued.secret) is not None
        again = AccountStore(ledger, KeyRing(), clock, AuditLog(ledger, clock))
        await again.load()
        key = again.keyring.lookup(issued.secret)
        assert key is not None and key.allowed_models == frozenset({"a", "b"}) and key.limits == {"requests_per_minute": 5}
        rotated = await store.rotate_key(issued.key.id)
        assert store.keyring.lookup(issued.secret) is None and store.keyring.lookup(rotated.secret) is not None
        await store.delete_account(account.id)
        assert (await ledger.fetchone("SELECT count(*) FROM api_keys"))[0] == 0
    finally:
        await ledger.close()


async def test_migrations_apply_once_and_reopen_cleanly(storage, tmp_path):
    first = await opened(storage, tmp_path)
    await first.record(event(5))
    await first.close()
    second = await opened(storage, tmp_path)  # nothing to migrate: the row is still there
    try:
        assert (await second.fetchone("SELECT count(*) FROM usage_events"))[0] == 1
        if storage.url:
            assert (await second.fetchone("SELECT max(version) FROM noor_schema"))[0] == SCHEMA_VERSION
    finally:
        await second.close()


async def test_two_daemons_hear_each_others_key_changes(storage, tmp_path):
    """On PostgreSQL a change committed by one daemon reaches the other's KeyRing within a second;
    on SQLite (one daemon per file) there is no one to tell."""
    if not storage.url:
        pytest.skip("one daemon per SQLite file")
    clock = ManualClock(start=1_700_000_000)
    a, b = await opened(storage, tmp_path), await opened(storage, tmp_path)
    try:
        store_a = AccountStore(a, KeyRing(), clock, AuditLog(a, clock))
        store_b = AccountStore(b, KeyRing(), clock, AuditLog(b, clock))
        await store_a.load()
        await store_b.load()
        account = await store_a.create_account("team@example.com", "free")
        issued = await store_a.create_key(account.id)

        async def until(predicate) -> float:
            started = asyncio.get_running_loop().time()
            while not predicate():
                assert asyncio.get_running_loop().time() - started < 1.0, "not propagated within a second"
                await asyncio.sleep(0.01)
            return asyncio.get_running_loop().time() - started

        await until(lambda: store_b.keyring.lookup(issued.secret) is not None)
        await store_a.set_key_status(issued.key.id, "suspended")
        await until(lambda: store_b.keyring.lookup(issued.secret).status == "suspended")
        await store_a.revoke_key(issued.key.id)
        await until(lambda: store_b.keyring.lookup(issued.secret) is None)
        await store_a.update_account(account.id, plan="pro")
        await until(lambda: store_b.keyring.accounts[account.id].plan == "pro")
    finally:
        await a.close()
        await b.close()


async def test_only_one_daemon_runs_a_background_job_at_a_time(storage, tmp_path):
    a, b = await opened(storage, tmp_path), await opened(storage, tmp_path)
    try:
        async with a.exclusive("retention") as mine:
            assert mine
            async with b.exclusive("retention") as theirs:
                assert theirs is (not storage.url)  # SQLite: one daemon, always its turn
        async with b.exclusive("retention") as theirs:
            assert theirs
    finally:
        await a.close()
        await b.close()


async def test_a_caller_cancelled_while_waiting_cancels_nobody_else(storage, tmp_path):
    """Callers of one batch share its commit: one of them leaving (a client gone) must not take the
    others' commit with it, and its own row is still written."""
    ledger = await opened(storage, tmp_path)
    try:
        leaving = asyncio.create_task(ledger.record(event(1)))
        staying = asyncio.create_task(ledger.record(event(2)))
        await asyncio.sleep(0)  # both are in the same batch now
        leaving.cancel()
        await staying
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert (await ledger.fetchone("SELECT count(*) FROM usage_events"))[0] == 2
    finally:
        await ledger.close()
