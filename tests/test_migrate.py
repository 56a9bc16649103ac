"""`noor migrate --from sqlite:PATH --to postgresql://…`: a real installation moves without losing a row.

The source is made by a real daemon on SQLite (accounts, keys, calls through the simulator, thousands of
usage events with their rollups, audit rows, privacy requests and an erasure, mail stuck in the outbox,
billing against the Stripe stand-in); the target is a fresh database on the local PostgreSQL server.
These tests always use both engines explicitly, whatever NOOR_TEST_STORAGE says.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import conftest
import pg_helpers
import pytest
from billing_helpers import billing_config, event, eventually, post_event, stripe  # noqa: F401 - fixture
from click.testing import CliRunner, Result
from conftest import SIMULATOR_CONFIG
from gateway_helpers import openai_client
from privacy_helpers import free_port

from noor_daemon.cli import cli
from noor_daemon.clock import ManualClock
from noor_daemon.domain.accounts import KeyRing
from noor_daemon.ledger import schema
from noor_daemon.ledger.accounts import AccountStore
from noor_daemon.ledger.audit import AuditLog
from noor_daemon.ledger.migration import ENGINE_ONLY, MigrationError, migrate_sqlite_to_postgres
from noor_daemon.ledger.sqlite import SqliteLedger
from noor_daemon.ledger.usage import HOUR_MS, UsageEvent
from noor_daemon.state import ACCOUNTS, BILLING, LEDGER, PRIVACY

SYNTHETIC_EVENTS = 3000
FILLED = (
    "accounts", "api_keys", "usage_events", "usage_hourly", "route_hourly", "audit_log", "privacy_requests",
    "privacy_state", "policy_versions", "mail_outbox", "billing_customers", "billing_meter_outbox",
    "billing_deletions", "billing_webhook_events", "billing_state",
)  # fmt: skip
"""Every table of schema version 4 (later ones are copied too, filled or not)."""


async def noor(*args: str) -> Result:
    """The real command through click (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), catch_exceptions=False)


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as the stdlib reads them, in a stable order."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        # SQLite's own bookkeeping does not move (the target keeps its own rows of it).
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names if n not in ENGINE_ONLY}
    finally:
        db.close()


async def pg_tables(url: str, names: list[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """The same for PostgreSQL (every table but the migrations' own `noor_schema`), columns in SQLite's order."""
    conn = await asyncpg.connect(url)
    try:
        if names is None:
            names = [r[0] for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'noor_schema'"
            ) if r[0] not in ENGINE_ONLY]
        return {n: sorted((tuple(r) for r in await conn.fetch(f"SELECT * FROM {n}")), key=repr) for n in names}
    finally:
        await conn.close()


async def pg_table_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    finally:
        await conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def build_installation(start_daemon, stripe, monkeypatch, data: Path) -> dict[str, Any]:
    """A SQLite installation with something in (nearly) every table, made by the real daemon; then stopped."""
    monkeypatch.setattr(conftest, "STORAGE", "sqlite")  # the source is SQLite even on a PostgreSQL run of the suite
    now = time.time()
    clock = ManualClock(start=now - now % 3600 + 600)
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {free_port()}\nsecurity = "none"\nfrom_address = "noor@gateway.example"\ntimeout = 2\n'
    daemon = await start_daemon(billing_config(stripe, extra=smtp, billing_extra="meter_delay_seconds = 120"), clock=clock, data_dir=data)
    store, ledger, privacy, billing = daemon.app[ACCOUNTS], daemon.app[LEDGER], daemon.app[PRIVACY], daemon.app[BILLING]

    alice = await daemon.create_key("alice@example.com", plan="pro", name="laptop", allowed_models=["sim-gpt"])
    zoe = await daemon.create_key("Zoë@example.com", plan="team", limits={"requests_per_minute": 50})
    await daemon.create_key("gone@example.com", plan="pro")
    accounts = {a.email: a for a in await store.list_accounts()}
    spare = await store.create_key(accounts["alice@example.com"].id, name="spare")
    await store.revoke_key(spare.key.id)
    await billing.run_once()  # Stripe customers for every account
    await eventually(lambda: ledger.fetchone("SELECT 1 WHERE (SELECT count(*) FROM billing_customers) = 3"))

    for key in (alice, zoe):
        client = openai_client(daemon, key)
        for i in range(3):
            await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": f"call {i}"}], max_tokens=8)
        await client.close()
    hour = int(clock.now() * 1000) // HOUR_MS * HOUR_MS
    people = [(accounts["alice@example.com"].id, "laptop"), (accounts["Zoë@example.com"].id, None)]
    key_ids = {r["account_id"]: r["id"] for r in await ledger.fetchall("SELECT id, account_id FROM api_keys WHERE status = 'active'")}
    await asyncio.gather(*(
        ledger.record(UsageEvent(
            ts=hour - 5 * HOUR_MS + i * 6000, account_id=people[i % 2][0], key_id=key_ids[people[i % 2][0]],
            model=("sim-gpt", "sim-claude", "gpt-4o-mini")[i % 3], provider="simulator", endpoint="chat.completions",
            status=(200, 200, 200, 429, 500)[i % 5], prompt_tokens=i % 997, completion_tokens=i % 101,
            latency_ms=i * 0.37 + 0.125, ttft_ms=None if i % 4 else i / 7, stream=i % 2 == 0, estimated=i % 9 == 0,
        ))
        for i in range(SYNTHETIC_EVENTS)
    ))

    await privacy.record_request("access", accounts["alice@example.com"].id, note="asked by mail", actor="admin")
    await privacy.policies.publish(effective_at=hour + 48 * HOUR_MS, summary="Clearer retention wording", material=False)
    status, _ = await post_event(daemon.url, event("customer.updated", {"id": "cus_x", "object": "customer"}))
    assert status == 200
    clock.advance(3600)  # the hour of the calls closes: the meter reports it
    await billing.run_once()
    stripe.outage()  # from here Stripe is down: the erased account's deletion stays queued in billing_deletions
    await privacy.delete_account("gone@example.com")
    # Stop only once the billing pass this woke has tried Stripe: on Python 3.11 a task cancelled while
    # its `wait_for(event.wait())` completes swallows the cancellation, and shutdown would wait forever.
    await eventually(lambda: ledger.fetchone("SELECT 1 FROM billing_deletions WHERE attempts > 0"))
    await daemon.runner.cleanup()
    stripe.recover()

    path = data / "ledger.sqlite3"
    tables = sqlite_tables(path)
    empty = sorted(name for name in FILLED if not tables[name])
    assert empty == [], f"the installation should fill these tables too: {empty}"
    assert len(tables["usage_events"]) >= SYNTHETIC_EVENTS + 6
    assert any(isinstance(r[4], bytes) for r in tables["mail_outbox"])  # message BLOBs waiting for SMTP
    return {"path": path, "alice": alice, "zoe": zoe, "tables": tables}


async def test_a_real_installation_moves_whole_and_daemons_carry_on(start_daemon, stripe, monkeypatch, tmp_path):
    source = await build_installation(start_daemon, stripe, monkeypatch, tmp_path / "sqlite-data")
    path, before = source["path"], source["tables"]
    async with pg_helpers.fresh_database() as url:
        # --dry-run counts and writes nothing, on either side.
        checksum = digest(path)
        dry = await noor("migrate", "--from", f"sqlite:{path}", "--to", url, "--dry-run", "--json")
        assert dry.exit_code == 0, dry.output
        planned = json.loads(dry.stdout)
        assert planned["dry_run"] is True
        assert {t["table"]: t["rows"] for t in planned["tables"]} == {n: len(rows) for n, rows in before.items()}
        assert await pg_table_count(url) == 0 and digest(path) == checksum

        moved = await noor("migrate", "--from", f"sqlite:{path}", "--to", url, "--json")
        assert moved.exit_code == 0, moved.output
        report = json.loads(moved.stdout)
        assert {t["table"]: t["rows"] for t in report["tables"]} == {n: len(rows) for n, rows in before.items()}
        assert report["rows"] == sum(len(rows) for rows in before.values())
        assert report["identities"]["usage_events.id"] == max(r[0] for r in before["usage_events"])
        assert report["checksums"]["usage_events.prompt_tokens"] == sum(r[8] for r in before["usage_events"])
        order = [t["table"] for t in report["tables"]]
        assert order.index("accounts") < order.index("api_keys")

        # Every row of every table, value for value (floats, NULLs, BLOBs, non-ASCII text).
        after = await pg_tables(url)
        assert after.keys() == before.keys()
        for name in before:
            assert after[name] == before[name], f"{name} differs"

        # Refused the second time, and nothing changes.
        again = await noor("migrate", "--from", f"sqlite:{path}", "--to", url)
        assert again.exit_code == 1
        assert "already holds rows" in again.stderr and "empty database" in again.stderr
        assert await pg_tables(url) == after

        # A daemon on PostgreSQL takes the old keys and numbers new rows after the copied ones.
        daemon = await start_daemon(f'{SIMULATOR_CONFIG}\n[storage]\nurl = "{url}"\n', data_dir=tmp_path / "pg-data")
        assert daemon.app[LEDGER].engine == "postgresql"
        client = openai_client(daemon, source["alice"])
        answer = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hello again"}], max_tokens=8)
        await client.close()
        assert answer.usage.total_tokens > 0
        newest = await daemon.app[LEDGER].fetchone("SELECT max(id) AS id, count(*) AS n FROM usage_events")
        assert newest["n"] == len(before["usage_events"]) + 1
        assert newest["id"] == max(r[0] for r in before["usage_events"]) + 1
        account = await daemon.app[ACCOUNTS].get_account("zoë@EXAMPLE.com")  # case-insensitive, as on SQLite
        await daemon.app[ACCOUNTS].create_key(account.id, name="after the move")
        audit = await daemon.app[LEDGER].fetchone("SELECT max(id) AS id FROM audit_log")
        assert audit["id"] > max(r[0] for r in before["audit_log"])
        await daemon.runner.cleanup()


async def small_ledger(path: Path, events: int = 50) -> None:
    """A ledger made by the real code (SqliteLedger, AccountStore), without a daemon."""
    ledger = SqliteLedger(path)
    await ledger.open()
    clock = ManualClock(start=1_700_000_000)
    store = AccountStore(ledger, KeyRing(), clock, AuditLog(ledger, clock))
    account = await store.create_account("dev@example.com", "free")
    issued = await store.create_key(account.id)
    await asyncio.gather(*(
        ledger.record(UsageEvent(ts=1_700_000_000_000 + i, account_id=account.id, key_id=issued.key.id, model="m",
                                 provider="p", endpoint="chat.completions", status=200, prompt_tokens=i, completion_tokens=1,
                                 latency_ms=1.5))
        for i in range(events)
    ))
    await ledger.close()


async def test_a_failure_midway_leaves_the_target_as_it_was(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    await small_ledger(path)
    db = sqlite3.connect(path)
    # SQLite keeps what does not fit a column's type: a text in a BLOB column converts; text in an
    # INTEGER one cannot. usage_hourly is copied after usage_events, so rows were already in.
    db.execute("INSERT INTO mail_outbox (kind, message, next_attempt_at, created_at) VALUES ('k', 'as text', 1, 1)")
    db.execute("UPDATE usage_hourly SET requests = 'many'")
    db.commit()
    db.close()
    async with pg_helpers.fresh_database() as url:
        result = await noor("migrate", "--from", str(path), "--to", url)
        assert result.exit_code == 1
        assert "usage_hourly.requests holds a str value" in result.stderr and "many" not in result.stderr
        assert await pg_table_count(url) == 0  # not even the schema: one transaction

        db = sqlite3.connect(path)
        db.execute("UPDATE usage_hourly SET requests = 50")
        db.commit()
        db.close()
        result = await noor("migrate", "--from", f"sqlite:{path}", "--to", url)
        assert result.exit_code == 0, result.output
        assert "Copied" in result.stdout and '[storage] url = "' in result.stdout
        rows = (await pg_tables(url, ["mail_outbox"]))["mail_outbox"]
        assert [r[4] for r in rows] == [b"as text"]  # a BYTEA column gets bytes


async def test_a_ledger_written_during_the_move_is_not_half_copied(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    await small_ledger(path, events=500)
    writer = sqlite3.connect(path)

    def progress(done: int, total: int) -> None:  # a "daemon" commits while the copy runs
        if 0 < done < total:
            writer.execute("INSERT INTO audit_log (ts, actor, action) VALUES (1, 'daemon', 'still running')")
            writer.commit()

    async with pg_helpers.fresh_database() as url:
        with pytest.raises(MigrationError, match="changed while it was copied"):
            await migrate_sqlite_to_postgres(path, url, chunk_rows=100, progress=progress)
        assert await pg_table_count(url) == 0
    writer.close()


async def test_an_older_ledger_is_upgraded_first_and_new_tables_move_too(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for version in range(2):  # a ledger from before privacy and billing
        db.executescript(f"BEGIN;\n{schema.MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;")
    db.execute("INSERT INTO accounts VALUES ('acct_1', 'old@example.com', 'free', 'active', 1)")
    db.execute("INSERT INTO audit_log (id, ts, actor, action) VALUES (41, 1, 'admin', 'account.created')")
    db.close()
    async with pg_helpers.fresh_database() as url:
        result = await noor("migrate", "--from", f"sqlite:{path}", "--to", url, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["source_upgraded_from"] == 2 and report["schema_version"] == schema.SCHEMA_VERSION
        assert {"privacy_requests", "billing_customers"} <= {t["table"] for t in report["tables"]}
        assert report["identities"] == {"audit_log.id": 41}
        assert await pg_tables(url, ["accounts"]) == {"accounts": [("acct_1", "old@example.com", "free", "active", 1, None)]}


async def test_bad_arguments_and_a_missing_source(tmp_path):
    result = await noor("migrate", "--from", "sqlite:x", "--to", "http://db.example/noor")
    assert result.exit_code == 2 and "postgresql://" in result.stderr
    result = await noor("migrate", "--from", "postgresql://db/noor", "--to", "postgresql://db/noor")
    assert result.exit_code == 2
    result = await noor("migrate", "--from", f"sqlite:{tmp_path / 'nothing.sqlite3'}", "--to", "postgresql://127.0.0.1/x")
    assert result.exit_code == 1 and "no SQLite ledger" in result.stderr
    assert not (tmp_path / "nothing.sqlite3").exists()
    await small_ledger(tmp_path / "ledger.sqlite3")
    result = await noor("migrate", "--from", f"sqlite:{tmp_path}", "--to", f"postgresql://noor:s3cret@127.0.0.1:{free_port()}/x")
    assert result.exit_code == 1 and "cannot reach PostgreSQL at postgresql://noor:***@127.0.0.1" in result.stderr
    assert "s3cret" not in result.output  # a data dir works as --from too; the password is never printed
    help_text = (await noor("migrate", "--help")).stdout
    assert "Stop the daemon" in help_text and "[storage]" in help_text and 'url = "postgresql://' in help_text
