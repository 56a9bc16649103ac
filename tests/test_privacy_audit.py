"""The audit log: account and key lifecycle, suspensions, exports, deletions and retention runs,
each with time and actor, no content and no email; filtered and paged through the admin API."""

from __future__ import annotations

import aiohttp

from noor_daemon.state import LEDGER

EMAIL = "audited@example.org"


async def call(daemon, method: str, path: str, expect: int = 200, **kwargs):
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.request(method, f"{daemon.url}/admin/v1{path}", **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else await response.read()
            assert response.status == expect, body
            return body


async def test_lifecycle_is_audited_without_emails(daemon):
    account = await call(daemon, "POST", "/accounts", 201, json={"email": EMAIL})
    other = await call(daemon, "POST", "/accounts", 201, json={"email": "other@example.org"})
    key = await call(daemon, "POST", "/keys", 201, json={"account": EMAIL})
    rotated = await call(daemon, "POST", f"/keys/{key['id']}/rotate", 201)
    await call(daemon, "POST", f"/keys/{rotated['id']}/suspend", json={"reason": "leaked in a log"})
    await call(daemon, "POST", f"/keys/{rotated['id']}/revoke")
    await call(daemon, "POST", f"/accounts/{EMAIL}/suspend")
    await call(daemon, "POST", f"/accounts/{EMAIL}/unsuspend")
    await call(daemon, "PATCH", f"/accounts/{EMAIL}", json={"plan": "free"})
    await call(daemon, "GET", f"/accounts/{EMAIL}/export")
    await call(daemon, "POST", "/privacy/retention/run", json={"dry_run": False})
    await call(daemon, "DELETE", f"/accounts/{other['id']}")

    entries = (await call(daemon, "GET", "/audit", params={"limit": "1000"}))["data"]
    actions = [e["action"] for e in entries]
    for expected in (
        "account.created", "key.created", "key.rotated", "key.suspended", "key.revoked", "account.suspended",
        "account.unsuspended", "account.updated", "privacy.exported", "retention.ran", "account.deleted",
        "privacy.erased",
    ):
        assert expected in actions, expected
    assert entries == sorted(entries, key=lambda e: e["id"], reverse=True)  # newest first
    for entry in entries:
        assert entry["ts"].endswith("Z") and entry["actor"] in ("admin", "system", "self")
    raw = await daemon.app[LEDGER].fetchall("SELECT * FROM audit_log")
    assert not [dict(r) for r in raw if "@" in str(dict(r))], "an email reached the audit log"

    mine = (await call(daemon, "GET", "/audit", params={"account": EMAIL}))["data"]
    assert mine and {e["account_id"] for e in mine} == {account["id"]}
    assert mine == (await call(daemon, "GET", "/audit", params={"account": account["id"]}))["data"]
    keys = (await call(daemon, "GET", "/audit", params={"action": "key.*"}))["data"]
    assert {e["action"] for e in keys} == {"key.created", "key.rotated", "key.suspended", "key.revoked"}
    suspended = next(e for e in keys if e["action"] == "key.suspended")
    assert suspended["details"]["reason"] == "leaked in a log" and suspended["target_id"] == rotated["id"]


async def test_audit_pages_back_by_id(daemon):
    for i in range(5):
        await call(daemon, "POST", "/accounts", 201, json={"email": f"user{i}@example.org"})
    first = await call(daemon, "GET", "/audit", params={"limit": "2", "action": "account.created"})
    assert len(first["data"]) == 2 and first["next_before"] == first["data"][-1]["id"]
    seen = [e["id"] for e in first["data"]]
    before = first["next_before"]
    while before:
        page = await call(daemon, "GET", "/audit", params={"limit": "2", "action": "account.created", "before": str(before)})
        seen += [e["id"] for e in page["data"]]
        before = page["next_before"]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    await call(daemon, "GET", "/audit", 400, params={"limit": "0"})
    await call(daemon, "GET", "/audit", 400, params={"before": "soon"})
