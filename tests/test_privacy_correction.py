"""Correction: an account's email is changed through the admin API, audited without the
address, recorded as a correction request, and confirmed by a mail to the new address."""

from __future__ import annotations

import aiohttp
from privacy_helpers import eventually, smtp  # noqa: F401

from noor_daemon.state import LEDGER

OLD = "old.address@example.org"
NEW = "new.address@example.org"


async def call(daemon, method: str, path: str, expect: int = 200, **kwargs):
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.request(method, f"{daemon.url}/admin/v1{path}", **kwargs) as response:
            body = await response.json()
            assert response.status == expect, body
            return body


async def test_email_change_is_confirmed_to_the_new_address_audited_and_recorded(start_daemon, smtp):
    daemon = await start_daemon(smtp.config())
    account = await call(daemon, "POST", "/accounts", 201, json={"email": OLD})
    await eventually(lambda: smtp.recorder.to(OLD), what="the account-created mail")

    changed = await call(daemon, "PATCH", f"/accounts/{OLD}", json={"email": NEW})
    assert changed["email"] == NEW and changed["id"] == account["id"]
    await eventually(lambda: smtp.recorder.to(NEW), what="the confirmation to the new address")
    (confirmation,) = smtp.recorder.to(NEW)
    message = confirmation.message
    assert "now uses this address" in message["Subject"]
    assert "did not ask for this change" in message.get_body(("plain",)).get_content()
    assert len(smtp.recorder.to(OLD)) == 1  # only the welcome went to the old address

    requests = await call(daemon, "GET", "/privacy/requests", params={"kind": "correction"})
    (request,) = requests["data"]
    assert request["account_id"] == account["id"] and request["status"] == "completed"

    rows = await daemon.app[LEDGER].fetchall("SELECT * FROM audit_log WHERE account_id = ?", (account["id"],))
    actions = [r["action"] for r in rows]
    assert "account.updated" in actions and "privacy.corrected" in actions
    for row in rows:
        assert "@" not in str(dict(row)), "the audit log never holds an email"
    updated = next(r for r in rows if r["action"] == "account.updated")
    assert '"email": "changed"' in updated["details"]

    # The account answers to its new address only.
    assert (await call(daemon, "GET", f"/accounts/{NEW}"))["id"] == account["id"]
    await call(daemon, "GET", f"/accounts/{OLD}", 404)


async def test_a_taken_or_unchanged_address_sends_nothing(start_daemon, smtp):
    daemon = await start_daemon(smtp.config())
    await call(daemon, "POST", "/accounts", 201, json={"email": OLD})
    await call(daemon, "POST", "/accounts", 201, json={"email": NEW})
    await eventually(lambda: len(smtp.recorder.received) == 2, what="two welcome mails")

    conflict = await call(daemon, "PATCH", f"/accounts/{OLD}", 409, json={"email": NEW.upper()})
    assert conflict["error"]["code"] == "conflict"
    await call(daemon, "PATCH", f"/accounts/{OLD}", 400, json={"email": "not-an-address"})
    await call(daemon, "PATCH", f"/accounts/{OLD}", json={"email": OLD})  # the same address: no correction
    await call(daemon, "PATCH", f"/accounts/{OLD}", json={"plan": "free"})

    rows = await daemon.app[LEDGER].fetchall("SELECT count(*) FROM mail_outbox")
    assert rows[0][0] == 2
    assert (await call(daemon, "GET", "/privacy/requests", params={"kind": "correction"}))["data"] == []
