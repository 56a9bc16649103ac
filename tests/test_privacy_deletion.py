"""Deletion (right to erasure): nothing of the account remains — in any table, in the raw
database files, in the Maildir — its keys are refused at once, the audit log keeps a
pseudonymous record, and a "deletion completed" notice is sent and then forgotten."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from privacy_helpers import chat_body, eventually, eventually_async, maildir_files, smtp  # noqa: F401

from noor_daemon import paths
from noor_daemon.domain.api_keys import hash_key
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.state import ACCOUNTS, LEDGER, PRIVACY

OLD_EMAIL = "Grace.Hopper@Example.org"
EMAIL = "grace.h@navy.example"
BYSTANDER = "bystander@example.org"


class Admin:
    def __init__(self, daemon, http: aiohttp.ClientSession) -> None:
        self.daemon, self.http = daemon, http

    async def call(self, method: str, path: str, expect: int = 200, **kwargs):
        async with self.http.request(method, f"{self.daemon.url}/admin/v1{path}", headers=self.daemon.admin_headers, **kwargs) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            assert r.status == expect, (r.status, body)
            return body


async def chat(daemon, http: aiohttp.ClientSession, key: str) -> int:
    async with http.post(f"{daemon.base_url}/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status


async def traces(daemon, needles: list[str]) -> list[str]:
    """Every place in the ledger (each column of each table, the raw DB, WAL and SHM bytes) and in
    every other file of the data dir (the Maildir, tokens) where one of `needles` appears."""
    found: list[str] = []
    ledger = daemon.app[LEDGER]
    lowered = [n.lower() for n in needles]
    tables = [r[0] for r in await ledger.fetchall(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'" if ledger.engine == "postgresql"
        else "SELECT name FROM sqlite_master WHERE type = 'table'"
    )]
    assert {"accounts", "api_keys", "usage_events", "usage_hourly", "audit_log", "privacy_requests", "mail_outbox"} <= set(tables)
    for table in tables:
        for row in await ledger.fetchall(f'SELECT * FROM "{table}"'):
            for column in row.keys():
                value = row[column]
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                found += [f"{table}.{column}: {n}" for n in lowered if n in text.lower()]
    for file in sorted(p for p in Path(daemon.data_dir).rglob("*") if p.is_file()):
        data = file.read_bytes().lower()
        found += [f"{file.relative_to(daemon.data_dir)}: {n}" for n in lowered if n.encode() in data]
    return found


async def test_admin_deletion_leaves_nothing_of_the_account(start_daemon, smtp):
    daemon = await start_daemon(smtp.config())
    db_file = paths.database_file(daemon.data_dir)
    async with aiohttp.ClientSession() as http:
        admin = Admin(daemon, http)
        account = await admin.call("POST", "/accounts", 201, json={"email": OLD_EMAIL})
        bystander = await admin.call("POST", "/accounts", 201, json={"email": BYSTANDER})
        k1 = await admin.call("POST", "/keys", 201, json={"account": account["id"], "name": "laptop"})
        k2 = await admin.call("POST", "/keys", 201, json={"account": account["id"], "name": "ci"})
        kb = await admin.call("POST", "/keys", 201, json={"account": bystander["id"]})
        for key in (k1, k2, kb):
            for _ in range(3):
                assert await chat(daemon, http, key["key"]) == 200
        k3 = await admin.call("POST", f"/keys/{k1['id']}/rotate", 201)  # audit names old id, new id and prefix
        assert await chat(daemon, http, k3["key"]) == 200
        await admin.call("POST", f"/keys/{k2['id']}/suspend", 200, json={"reason": "testing"})
        await admin.call("POST", f"/keys/{k2['id']}/unsuspend", 200)
        await admin.call("PATCH", f"/accounts/{account['id']}", json={"email": EMAIL})  # a correction
        await admin.call("GET", f"/accounts/{EMAIL}/export")  # an access request, audited
        await admin.call(
            "POST", "/privacy/requests", 201,
            json={"kind": "access", "account": account["id"], "note": f"asked again by mail from {EMAIL}"},
        )
        await eventually(lambda: smtp.recorder.to(EMAIL), what="the email-changed mail")
        # As in a daemon that has run a while: the account's rows are in the database file
        # itself, not only in the WAL.
        assert await daemon.app[LEDGER].checkpoint()

        erased = await admin.call("DELETE", f"/accounts/{EMAIL}")
        # Refused from the very next request.
        for key in (k1, k2, k3):
            assert await chat(daemon, http, key["key"]) == 401
        assert await chat(daemon, http, kb["key"]) == 200

    assert erased["deleted"] is True and erased["id"] == account["id"]
    assert erased["notice"] == "queued"
    pseudonym = erased["pseudonym"]
    assert pseudonym.startswith("anon_") and pseudonym == daemon.app[PRIVACY].pseudonym(EMAIL)

    # The notice reaches the person, then its outbox row and the WAL's old pages are gone.
    await eventually(lambda: any("deleted" in r.message["Subject"] for r in smtp.recorder.to(EMAIL)), what="the notice")
    notice = [r for r in smtp.recorder.to(EMAIL) if "deleted" in r.message["Subject"]][0].message
    assert notice.get_body(("plain",)).get_content().count("deleted") >= 1

    async def forgotten() -> bool:
        rows = await daemon.app[LEDGER].fetchall("SELECT count(*) FROM mail_outbox WHERE forget = 1")
        return rows[0][0] == 0

    await eventually_async(forgotten, what="the notice's outbox row to be removed")

    keys = [k1, k2, k3]
    needles = [
        OLD_EMAIL, EMAIL, account["id"],
        *(k["id"] for k in keys), *(k["prefix"] for k in keys), *(k["key"] for k in keys),
        *(hash_key(k["key"]) for k in keys),
    ]
    # The sender truncates the WAL right after removing the row; allow it that moment.
    async def clean() -> bool:
        return await traces(daemon, needles) == []

    try:
        await eventually_async(clean, timeout=5, what="no trace")
    finally:
        assert await traces(daemon, needles) == []

    # What remains: a pseudonymous record, the bystander's data, and the routing aggregates.
    ledger = daemon.app[LEDGER]
    actions = [r["action"] for r in await ledger.fetchall("SELECT action FROM audit_log WHERE account_id = ? ORDER BY id", (pseudonym,))]
    for expected in ("account.created", "key.created", "key.rotated", "key.suspended", "account.updated",
                     "privacy.exported", "account.deleted", "privacy.erased"):
        assert expected in actions
    requests = {r["kind"]: dict(r) for r in await ledger.fetchall("SELECT * FROM privacy_requests WHERE account_id = ?", (pseudonym,))}
    assert requests["deletion"]["status"] == "completed" and requests["deletion"]["source"] == "admin"
    assert requests["access"]["note"] == "[erased]"
    bystander_rows = await ledger.fetchall("SELECT count(*) FROM usage_events WHERE account_id = ?", (bystander["id"],))
    assert bystander_rows[0][0] >= 3
    assert (await ledger.fetchall("SELECT count(*) FROM route_hourly"))[0][0] >= 1

    # The admin can still find the erased account's record by its former email.
    async with aiohttp.ClientSession() as http:
        entries = await Admin(daemon, http).call("GET", "/audit", params={"account": EMAIL})
        assert {e["account_id"] for e in entries["data"]} == {pseudonym}
        listed = await Admin(daemon, http).call("GET", "/privacy/requests", params={"account": EMAIL})
        assert {r["kind"] for r in listed["data"]} == {"access", "correction", "deletion"}

    # And after the daemon stops (SQLite folds the WAL back in on close): still nothing.
    await daemon.runner.cleanup()
    for suffix in ("", "-wal", "-shm"):
        file = Path(f"{db_file}{suffix}")
        if file.exists():
            data = file.read_bytes().lower()
            assert not [n for n in needles if n.lower().encode() in data], file


async def test_maildir_messages_of_the_account_go_and_no_notice_is_kept(daemon):
    async with aiohttp.ClientSession() as http:
        admin = Admin(daemon, http)
        account = await admin.call("POST", "/accounts", 201, json={"email": EMAIL})
        await admin.call("POST", "/accounts", 201, json={"email": BYSTANDER})

        async def two_files() -> bool:
            return len(maildir_files(daemon.data_dir)) == 2

        await eventually_async(two_files, what="two account-created messages in the Maildir")
        erased = await admin.call("DELETE", f"/accounts/{account['id']}")
    assert erased["notice"] == "skipped"
    remaining = maildir_files(daemon.data_dir)
    assert len(remaining) == 1 and BYSTANDER.encode() in remaining[0].read_bytes()
    assert await traces(daemon, [EMAIL, account["id"]]) == []
    entry = await daemon.app[LEDGER].fetchone("SELECT details FROM audit_log WHERE action = 'privacy.erased'")
    assert '"notice": "skipped"' in entry["details"]


async def test_self_service_deletion_needs_the_token_it_returned(start_daemon, smtp, manual_clock):
    daemon = await start_daemon(smtp.config(), clock=manual_clock)
    key = await daemon.create_key(EMAIL)
    other = await daemon.create_key(BYSTANDER)
    account = await daemon.app[ACCOUNTS].get_account(EMAIL)

    async with aiohttp.ClientSession() as http:
        async def me(path: str, secret: str, **kwargs):
            async with http.post(f"{daemon.url}/v1/me/{path}", headers={"Authorization": f"Bearer {secret}"}, **kwargs) as r:
                return r.status, await r.json()

        status, issued = await me("deletion", key)
        assert status == 202
        token = issued["token"]
        assert token.startswith("noor-delete-") and issued["expires_at"]
        # The token is stored as a hash only.
        stored = await daemon.app[LEDGER].fetchone("SELECT * FROM privacy_requests WHERE id = ?", (issued["request_id"],))
        assert stored["confirm_hash"] and token not in str(dict(stored))
        assert stored["status"] == "open" and stored["source"] == "self"

        # Nothing happens without the token, with a wrong one, or with another account's key.
        assert (await me("deletion/confirm", key, json={}))[0] == 400
        status, body = await me("deletion/confirm", key, json={"token": token + "x"})
        assert status == 400 and body["error"]["code"] == "invalid_confirmation_token"
        assert (await me("deletion/confirm", other, json={"token": token}))[0] == 400
        assert await chat(daemon, http, key) == 200

        status, body = await me("deletion/confirm", key, json={"token": token})
        assert status == 200, body
        assert body["deleted"] is True and body["request_id"] == issued["request_id"]
        assert await chat(daemon, http, key) == 401
        assert (await me("deletion", key))[0] == 401
        assert await chat(daemon, http, other) == 200

    request = await daemon.app[PRIVACY].requests.get(issued["request_id"])
    assert request["status"] == "completed" and request["account_id"].startswith("anon_")
    assert request["completed_at"] is not None
    await eventually(lambda: smtp.recorder.to(EMAIL) and any("deleted" in r.message["Subject"] for r in smtp.recorder.to(EMAIL)), what="notice")
    entry = await daemon.app[LEDGER].fetchone("SELECT actor FROM audit_log WHERE action = 'account.deleted'")
    assert entry["actor"] == "self"
    assert account.id not in str(await traces(daemon, [account.id]))


async def test_an_expired_deletion_token_is_refused_and_the_request_lapses(start_daemon, manual_clock):
    daemon = await start_daemon(clock=manual_clock)
    key = await daemon.create_key(EMAIL)
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {key}"}
        async with http.post(f"{daemon.url}/v1/me/deletion", headers=headers) as r:
            issued = await r.json()
        manual_clock.advance(25 * 3600)
        async with http.post(f"{daemon.url}/v1/me/deletion/confirm", headers=headers, json={"token": issued["token"]}) as r:
            assert r.status == 400
            assert "expired" in (await r.json())["error"]["message"]
        assert await chat(daemon, http, key) == 200
    service = daemon.app[PRIVACY]
    assert (await service.requests.get(issued["request_id"]))["status"] == "expired"
    report = await service.retention.run()
    assert report["expired_confirmations"] == 1
    assert (await service.requests.get(issued["request_id"]))["status"] == "cancelled"


async def test_billing_and_other_packages_hook_into_deletion(daemon):
    seen: list[str] = []
    store = daemon.app[ACCOUNTS]

    async def billing(account) -> None:
        seen.append(account.id)

    async def broken(account) -> None:
        raise RuntimeError("stripe is down")

    store.on_account_deleted.extend([broken, billing])
    await daemon.create_key(EMAIL)
    account = await store.get_account(EMAIL)
    erased = await daemon.app[PRIVACY].delete_account(EMAIL)
    assert erased.account_id == account.id
    assert seen == [account.id]  # a failing hook does not undo or stop the deletion


async def test_a_large_account_is_erased_in_batches_while_others_keep_calling(daemon):
    key = await daemon.create_key(EMAIL)
    other = await daemon.create_key(BYSTANDER)
    store = daemon.app[ACCOUNTS]
    account = await store.get_account(EMAIL)
    live_key = next(iter(k for k in daemon.app[ACCOUNTS].keyring.keys.values() if k.account_id == account.id))
    rows = [
        UsageEvent(ts=1_700_000_000_000 + i, model="sim-gpt", endpoint="chat/completions", status=200, latency_ms=1.0,
                   account_id=account.id, key_id=live_key.id, provider="simulator", prompt_tokens=1)
        for i in range(5000)
    ]
    await daemon.app[LEDGER].append_usage(rows)
    async with aiohttp.ClientSession() as http:
        deletion = asyncio.create_task(daemon.app[PRIVACY].delete_account(EMAIL))
        statuses = await asyncio.gather(*(chat(daemon, http, other) for _ in range(20)))
        await deletion
        assert await chat(daemon, http, key) == 401
    assert set(statuses) == {200}
    left = await daemon.app[LEDGER].fetchone("SELECT count(*) FROM usage_events WHERE account_id = ?", (account.id,))
    assert left[0] == 0


@pytest.mark.sqlite_file
async def test_the_writer_overwrites_deleted_content(daemon):
    """secure_delete on the writer connection, whatever the SQLite build's default."""

    async def setting(db):
        async with db.execute("PRAGMA secure_delete") as cursor:
            return (await cursor.fetchone())[0]

    assert await daemon.app[LEDGER].write(setting) == 1
