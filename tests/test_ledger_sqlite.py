"""The SQLite ledger's two commit paths: small batches on the loop, big ones (and locked files) in its thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from noor_daemon.ledger.sqlite import SqliteLedger
from noor_daemon.ledger.usage import HOUR_MS, UsageEvent

pytestmark = pytest.mark.sqlite_file

HOUR = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def event(ts: int, tokens: int = 10) -> UsageEvent:
    return UsageEvent(ts=ts, model="gpt-x", endpoint="chat/completions", status=200, latency_ms=1.0,
                      account_id="acct_a", key_id="key_a", provider="p", prompt_tokens=tokens, completion_tokens=1)


def main_file_rows(path: Path) -> int:
    """Rows in the database file itself, ignoring the WAL: what checkpoints have copied there."""
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return db.execute("SELECT count(*) FROM usage_events").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
async def ledger(tmp_path):
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    await ledger.open()
    yield ledger
    await ledger.close()


async def test_small_and_big_batches_commit_the_same_rows(ledger):
    threads_used = []
    original = ledger.write_batch

    def spy(db, events, samples, touches):
        threads_used.append(threading.current_thread() is threading.main_thread())
        return original(db, events, samples, touches)

    ledger.write_batch = spy
    await ledger.record(event(HOUR, 3))  # one event: on the loop
    big = [event(HOUR + i, 1) for i in range(ledger.INLINE_MAX + 50)]
    await asyncio.gather(*(ledger.record(e) for e in big))  # one batch above INLINE_MAX: in the thread
    assert threads_used[0] is True and False in threads_used
    (count, tokens) = await ledger.fetchone("SELECT count(*), sum(prompt_tokens) FROM usage_events")
    assert (count, tokens) == (1 + len(big), 3 + len(big))
    (requests,) = await ledger.fetchone("SELECT sum(requests) FROM usage_hourly")
    assert requests == 1 + len(big)


async def test_the_only_call_in_flight_commits_alone_without_waking_the_writer(ledger):
    ledger.calls_in_flight = lambda: 1
    woken = []
    ledger._open_batch = lambda: woken.append(1)  # the writer's queue: must not be used
    for i in range(3):
        await ledger.record(event(HOUR + i))
    assert woken == [] and ledger.batches_committed == 3
    (count,) = await ledger.fetchone("SELECT count(*) FROM usage_events")
    assert count == 3


async def test_a_lone_commit_that_fails_is_retried_by_the_writer(ledger):
    from noor_daemon.ledger.database import LedgerUnavailable

    ledger.calls_in_flight = lambda: 1
    (pages,) = await ledger.fetchone("PRAGMA page_count")
    await ledger.pragma(f"PRAGMA max_page_count = {pages}")  # a full disk
    failed = 0
    for i in range(200):  # the last free page fills up
        try:
            await ledger.record(event(HOUR + i))
        except LedgerUnavailable:
            failed = i
            break
    assert failed and not ledger.healthy
    await ledger.pragma("PRAGMA max_page_count = 1073741823")
    for _ in range(100):
        if ledger.healthy:
            break
        await asyncio.sleep(0.05)
    assert ledger.healthy
    (count,) = await ledger.fetchone("SELECT count(*) FROM usage_events")
    assert count == failed + 1  # the refused row was written by the writer's retry


async def test_commits_on_the_loop_are_checkpointed_by_the_thread(ledger):
    ledger.CHECKPOINT_EVERY = 8
    for i in range(20):
        await ledger.record(event(HOUR + i))
    for _ in range(100):  # the checkpoint runs in the writer thread, without being awaited
        await asyncio.sleep(0.02)
        if not ledger._checkpointing:  # reading the file while it is checkpointed into could tear
            break
    assert main_file_rows(ledger.path) >= 8  # the WAL was copied into the file: it does not grow for ever
    (count,) = await ledger.fetchone("SELECT count(*) FROM usage_events")
    assert count == 20


async def test_a_lock_held_elsewhere_hands_the_batch_to_the_thread_which_waits(ledger):
    other = sqlite3.connect(ledger.path, check_same_thread=False, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    released = []

    def release_later() -> None:
        time.sleep(0.3)
        released.append(time.monotonic())
        other.execute("ROLLBACK")

    started = asyncio.get_running_loop().run_in_executor(None, release_later)
    began = time.monotonic()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        await ledger.record(event(HOUR))  # the loop's connection fails at once; the thread waits (busy_timeout)
    finally:
        ticking.cancel()
        await started
        other.close()
    assert released and time.monotonic() - began >= 0.29
    assert ticks >= 10  # the loop kept running while the commit waited for the lock
    assert ledger.healthy
    (count,) = await ledger.fetchone("SELECT count(*) FROM usage_events")
    assert count == 1
