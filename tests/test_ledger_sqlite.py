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

    def spying(original):
        def spy(db, events, samples, touches, *known):
            threads_used.append((original.__name__, threading.current_thread() is threading.main_thread()))
            return original(db, events, samples, touches, *known)
        return spy

    ledger.write_batch, ledger.write_facts = spying(ledger.write_batch), spying(ledger.write_facts)
    await ledger.record(event(HOUR, 3))  # one event: its facts on the loop, its rollups folded later
    big = [event(HOUR + i, 1) for i in range(ledger.INLINE_MAX + 50)]
    await asyncio.gather(*(ledger.record(e) for e in big))  # one batch above INLINE_MAX: in the thread, with the fold
    assert threads_used[0] == ("write_facts", True) and ("write_batch", False) in threads_used
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


# -- a lone call's rollups, folded a moment later ------------------------------------------------------


async def hourly_requests(ledger: SqliteLedger) -> int:
    return (await ledger.fetchone("SELECT coalesce(sum(requests), 0) FROM usage_hourly"))[0]


async def test_the_rollups_of_calls_committed_alone_are_there_for_every_reader(ledger):
    """Facts committed on the loop wait for the fold; a read folds first, so no reader sees them missing."""
    ledger.FOLD_DELAY = 60.0  # no timer fold within the test
    ledger.calls_in_flight = lambda: 1
    for i in range(3):
        await ledger.record(event(HOUR + i))
    raw = sqlite3.connect(ledger.path)
    try:
        assert raw.execute("SELECT count(*) FROM usage_events").fetchone()[0] == 3
        assert raw.execute("SELECT coalesce(sum(requests), 0) FROM usage_hourly").fetchone()[0] == 0  # not folded yet
        marks = dict(raw.execute("SELECT facts, folded_through FROM rollup_watermark").fetchall())
        assert marks["usage_events"] == 0
    finally:
        raw.close()
    assert await hourly_requests(ledger) == 3  # the read folded them
    assert ledger._unfolded == 0


async def test_a_lone_call_leaves_its_keys_last_use_to_the_fold(ledger):
    """A lone commit writes three pages (the row and its two index entries); the key's row would be a fourth,
    so its last use is written by the fold that follows, which every reader waits for."""
    await ledger.write(lambda db: db.execute(
        "INSERT INTO accounts (id, email, plan, created_at) VALUES ('acct_a', 'a@example.com', 'free', 0)"))
    await ledger.write(lambda db: db.execute(
        "INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at) VALUES ('key_a', 'acct_a', 'h', 'nk-', 0)"))
    touched = [(HOUR + 5, "key_a")]
    ledger.pending_key_touches = lambda: [touched.pop()] if touched else []
    ledger.FOLD_DELAY = 60.0
    ledger.calls_in_flight = lambda: 1
    statements = []
    inline = ledger._inline_db
    inline.set_trace_callback(statements.append)
    await ledger.record(event(HOUR))
    inline.set_trace_callback(None)
    assert not any("api_keys" in sql for sql in statements) and touched  # not drained by the lone commit

    raw = sqlite3.connect(ledger.path)
    try:
        assert raw.execute("SELECT last_used_at FROM api_keys").fetchone()[0] is None
        await ledger.settle()  # the fold: rollups and the key's last use, one transaction
        assert raw.execute("SELECT last_used_at FROM api_keys").fetchone()[0] == HOUR + 5
        assert raw.execute("SELECT sum(requests) FROM usage_hourly").fetchone()[0] == 1
    finally:
        raw.close()
    assert not touched


async def test_the_fold_comes_by_itself_soon_after(ledger):
    ledger.FOLD_DELAY = 0.05
    ledger.calls_in_flight = lambda: 1
    await ledger.record(event(HOUR))
    raw = sqlite3.connect(ledger.path)
    try:
        for _ in range(100):
            if raw.execute("SELECT coalesce(sum(requests), 0) FROM usage_hourly").fetchone()[0] == 1:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the timer never folded the lone call's rollups")
    finally:
        raw.close()


async def test_a_crash_before_the_fold_loses_nothing_the_next_open_folds_it(tmp_path):
    """The database as a `kill -9` leaves it between a lone commit and its fold (the file and its WAL copied
    while the ledger is open): opening it folds the facts past the marks, once."""
    from noor_daemon.ledger.verify import verify

    ledger = SqliteLedger(tmp_path / "live" / "ledger.sqlite3")
    (tmp_path / "live").mkdir()
    await ledger.open()
    ledger.FOLD_DELAY = 60.0
    ledger.calls_in_flight = lambda: 1
    await ledger.record(event(HOUR, 7))
    await ledger.record(event(HOUR + 1, 5))
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{ledger.path}{suffix}")
        if source.exists():
            (crashed / f"ledger.sqlite3{suffix}").write_bytes(source.read_bytes())
    await ledger.close()

    reopened = SqliteLedger(crashed / "ledger.sqlite3")
    await reopened.open()
    try:
        assert tuple(await reopened.fetchone("SELECT sum(requests), sum(prompt_tokens) FROM usage_hourly")) == (2, 12)
        assert (await verify(reopened)).ok
    finally:
        await reopened.close()
    again = SqliteLedger(crashed / "ledger.sqlite3")
    await again.open()  # a second open folds nothing twice
    try:
        assert tuple(await again.fetchone("SELECT sum(requests), sum(prompt_tokens) FROM usage_hourly")) == (2, 12)
    finally:
        await again.close()


async def test_another_process_verifying_or_repairing_meanwhile_counts_nothing_twice(ledger):
    """`noor ledger verify --repair` opens the file while the daemon holds facts not yet folded: verify sees no
    difference (the marks say what is folded), a repair folds them, and the daemon's fold then finds nothing."""
    from noor_daemon.ledger.verify import repair, verify

    ledger.FOLD_DELAY = 60.0
    ledger.calls_in_flight = lambda: 1
    await ledger.record(event(HOUR, 3))
    await ledger.record(event(HOUR + 1, 4))
    other = SqliteLedger(ledger.path)
    await other.open()  # another process's open: it folds them (the marks move), and the daemon's fold finds none
    try:
        assert (await verify(other)).ok
        await repair(other)
        assert (await verify(other)).ok
    finally:
        await other.close()
    assert tuple(await ledger.fetchone("SELECT sum(requests), sum(prompt_tokens) FROM usage_hourly")) == (2, 7)
    assert (await verify(ledger)).ok


async def test_deleting_the_newest_facts_lowers_the_marks_so_the_next_ids_are_folded(ledger):
    """SQLite reuses the ids of deleted top rows: the marks come down with them, or a new fact with a reused id
    would read as folded when it is not."""
    from noor_daemon.ledger.usage import delete_usage
    from noor_daemon.ledger.verify import verify

    ledger.FOLD_DELAY = 60.0
    ledger.calls_in_flight = lambda: 1
    for i in range(3):
        await ledger.record(event(HOUR + i))
    await ledger.write(lambda db: delete_usage(db, "ts >= ?", (HOUR + 1,), 10))  # the two newest
    await ledger.record(event(HOUR + 5, 9))  # takes the id of a deleted row
    assert tuple(await ledger.fetchone("SELECT sum(requests), sum(prompt_tokens) FROM usage_hourly")) == (2, 19)
    assert (await verify(ledger)).ok


async def test_a_write_cancelled_as_its_transaction_begins_leaves_no_lock_behind(ledger):
    """BEGIN runs in aiosqlite's thread even when the awaiting task is cancelled: the transaction it opened must
    still end, or the write lock stays held (the fold at close waited its 5 s busy_timeout, then gave up)."""
    await ledger.settle()

    async def never_reached(db):
        raise AssertionError("the write was cancelled before its body")

    cancelled = asyncio.create_task(ledger.write(never_reached))
    await asyncio.sleep(0)  # the task runs to its first suspension: awaiting BEGIN IMMEDIATE
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    async def count_events(db):
        async with db.execute("SELECT count(*) FROM usage_events") as cursor:
            return (await cursor.fetchone())[0]

    assert await asyncio.wait_for(ledger.write(count_events), 2) == 0
    await ledger.record(event(HOUR, 5))
    await asyncio.wait_for(ledger.settle(), 2)  # the fold takes the write lock in the thread
    (requests,) = await ledger.fetchone("SELECT sum(requests) FROM usage_hourly")
    assert requests == 1


async def test_the_fold_uses_the_facts_it_kept_unless_someone_else_wrote_facts_meanwhile(ledger):
    """The fold of lone commits takes the events from memory (no read-back) while the database holds just
    those unfolded; a fact written by another connection in between makes it read them all back instead."""
    from noor_daemon.ledger.verify import verify

    ledger.FOLD_DELAY = 60.0
    ledger.calls_in_flight = lambda: 1
    statements: list[str] = []
    await ledger._in_batch_thread(ledger._batch_db.set_trace_callback, statements.append)
    await ledger.record(event(HOUR, 3))
    await ledger.record(event(HOUR + 1, 4))
    await ledger.settle()
    assert not [s for s in statements if s.startswith("SELECT id, ts")], "the kept facts were read back"
    assert tuple(await ledger.fetchone("SELECT sum(requests), sum(prompt_tokens) FROM usage_hourly")) == (2, 7)

    await ledger.record(event(HOUR + 2, 5))
    other = sqlite3.connect(ledger.path, isolation_level=None)
    try:  # another writer's fact, not folded: the counts no longer match what the daemon kept
        other.execute("INSERT INTO usage_events (ts, account_id, key_id, model, provider, endpoint, status, prompt_tokens,"
                      " completion_tokens, latency_ms) VALUES (?, 'acct_a', 'key_a', 'gpt-x', 'p', 'chat/completions', 200, 6, 1, 1.0)",
                      (HOUR + 3,))
    finally:
        other.close()
    statements.clear()
    await ledger.settle()
    assert [s for s in statements if s.startswith("SELECT id, ts")], "the facts were not read back"
    assert tuple(await ledger.fetchone("SELECT sum(requests), sum(prompt_tokens) FROM usage_hourly")) == (4, 18)
    assert (await verify(ledger)).ok


async def test_quotas_hear_of_a_lone_call_at_once_and_the_views_in_batches(ledger):
    """Immediate listeners (the quota counters) are told at the commit; the others within `PUBLISH_DELAY`, or
    sooner when anything reads (`publish`, `settle`), and lone calls before a batch in order, with it."""
    ledger.calls_in_flight = lambda: 1
    ledger.PUBLISH_DELAY = 60.0
    at_once: list[list[int]] = []
    batched: list[list[int]] = []
    ledger.add_listener(lambda events: at_once.append([e.ts for e in events]), immediate=True)
    ledger.add_listener(lambda events: batched.append([e.ts for e in events]))
    await ledger.record(event(HOUR))
    await ledger.record(event(HOUR + 1))
    assert (at_once, batched) == ([[HOUR], [HOUR + 1]], [])
    ledger.publish()
    assert batched == [[HOUR, HOUR + 1]]

    await ledger.record(event(HOUR + 2))
    ledger.calls_in_flight = lambda: 2  # not alone: this one joins a batch, told to every listener at its commit
    await ledger.record(event(HOUR + 3))
    assert batched[-1] == [HOUR + 2, HOUR + 3]
    assert at_once[-2:] == [[HOUR + 2], [HOUR + 3]]

    ledger.calls_in_flight = lambda: 1
    await ledger.record(event(HOUR + 4))
    await ledger.settle()  # what every reader of the ledger does first
    assert batched[-1] == [HOUR + 4]

    ledger.PUBLISH_DELAY = 0.02
    await ledger.record(event(HOUR + 5))
    for _ in range(100):
        if batched[-1] == [HOUR + 5]:
            break
        await asyncio.sleep(0.01)
    assert batched[-1] == [HOUR + 5], "the timer never told the views"


async def test_a_read_in_progress_on_the_shared_connection_does_not_hide_a_later_write(ledger):
    """Two requests read through the one shared connection; one is between its query and its rows when the other
    writes and reads back. On an aiosqlite cursor the first query's open statement would hold its snapshot, and the
    row just written would be missing from the second read."""
    await ledger.append_usage([event(HOUR + i) for i in range(5)])
    async with ledger.reader.execute("SELECT id FROM usage_events ORDER BY id") as slow:
        assert (await slow.fetchone())[0] == 1  # rows left to read: an aiosqlite statement would still be open
        await ledger.write(lambda db: db.execute(
            "INSERT INTO accounts (id, email, plan, created_at) VALUES ('acct_new', 'new@example.com', 'free', 0)"))
        assert await ledger.fetchone("SELECT id FROM accounts WHERE id = 'acct_new'") is not None
        assert len(await slow.fetchall()) == 4
