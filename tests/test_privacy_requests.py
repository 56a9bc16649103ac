"""Privacy requests: every access, correction and deletion request is recorded with its
received time, a due date 30 days later and its completion; overdue ones are flagged."""

from __future__ import annotations

import aiohttp

from noor_daemon.clock import ManualClock
from noor_daemon.state import PRIVACY

DAY = 86_400
START = 1_760_000_000.0


async def call(daemon, method: str, path: str, expect: int = 200, **kwargs):
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.request(method, f"{daemon.url}/admin/v1{path}", **kwargs) as response:
            body = await response.json()
            assert response.status == expect, body
            return body


async def test_a_recorded_request_is_due_in_30_days_and_flagged_once_overdue(start_daemon):
    clock = ManualClock(START)
    daemon = await start_daemon(clock=clock)
    account = await call(daemon, "POST", "/accounts", 201, json={"email": "req@example.org"})

    request = await call(
        daemon, "POST", "/privacy/requests", 201,
        json={"kind": "access", "account": "req@example.org", "note": "received by letter"},
    )
    assert request["status"] == "open" and request["source"] == "admin" and request["account_id"] == account["id"]
    assert request["received_at"] == "2025-10-09T08:53:20.000Z"
    assert request["due_at"] == "2025-11-08T08:53:20.000Z"  # received + 30 days
    assert request["overdue"] is False and request["days_left"] == 30

    clock.advance(29 * DAY)
    listed = await call(daemon, "GET", "/privacy/requests", params={"overdue": "true"})
    assert listed["data"] == [] and listed["overdue"] == 0 and listed["open"] == 1

    clock.advance(2 * DAY)
    listed = await call(daemon, "GET", "/privacy/requests", params={"overdue": "true"})
    assert [r["id"] for r in listed["data"]] == [request["id"]]
    assert listed["data"][0]["overdue"] is True and listed["overdue"] == 1

    done = await call(daemon, "POST", f"/privacy/requests/{request['id']}/complete", json={"note": "sent by post"})
    assert done["status"] == "completed" and done["overdue"] is False
    assert done["completed_at"] == "2025-11-09T08:53:20.000Z" and done["note"] == "sent by post"
    assert (await call(daemon, "GET", "/privacy/requests", params={"overdue": "true"}))["data"] == []
    audit = await call(daemon, "GET", "/audit", params={"action": "privacy.request_*"})
    assert {e["action"] for e in audit["data"]} == {"privacy.request_recorded", "privacy.request_completed"}


async def test_answering_a_request_completes_the_open_one(start_daemon):
    clock = ManualClock(START)
    daemon = await start_daemon(clock=clock)
    account = await call(daemon, "POST", "/accounts", 201, json={"email": "open@example.org"})
    recorded = await call(daemon, "POST", "/privacy/requests", 201, json={"kind": "access", "account": account["id"]})
    clock.advance(3 * DAY)
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.get(f"{daemon.url}/admin/v1/accounts/{account['id']}/export") as response:
            assert response.status == 200
            await response.read()
    answered = await daemon.app[PRIVACY].requests.get(recorded["id"])
    assert answered["status"] == "completed"
    assert answered["received_at"] == recorded["received_at"]  # the original request, three days later
    all_requests = await call(daemon, "GET", "/privacy/requests", params={"account": account["id"]})
    assert len(all_requests["data"]) == 1

    # An answer with nothing open records a request received and completed at once.
    await call(daemon, "PATCH", f"/accounts/{account['id']}", json={"email": "new@example.org"})
    correction = (await call(daemon, "GET", "/privacy/requests", params={"kind": "correction"}))["data"][0]
    assert correction["status"] == "completed" and correction["received_at"] == correction["completed_at"]


async def test_filters_paging_and_errors(start_daemon):
    daemon = await start_daemon()
    account = await call(daemon, "POST", "/accounts", 201, json={"email": "many@example.org"})
    ids = [
        (await call(daemon, "POST", "/privacy/requests", 201, json={"kind": kind, "account": account["id"]}))["id"]
        for kind in ("access", "correction", "deletion", "access")
    ]
    page = await call(daemon, "GET", "/privacy/requests", params={"limit": "2"})
    assert [r["id"] for r in page["data"]] == ids[:1:-1] and page["next_before"] == ids[2]
    rest = await call(daemon, "GET", "/privacy/requests", params={"limit": "2", "before": str(page["next_before"])})
    assert [r["id"] for r in rest["data"]] == ids[1::-1]
    assert len((await call(daemon, "GET", "/privacy/requests", params={"kind": "access"}))["data"]) == 2
    assert len((await call(daemon, "GET", "/privacy/requests", params={"status": "completed"}))["data"]) == 0

    error = await call(daemon, "POST", "/privacy/requests", 400, json={"kind": "erasure", "account": account["id"]})
    assert error["error"]["code"] == "invalid_request" and "access" in error["error"]["message"]
    await call(daemon, "POST", "/privacy/requests", 404, json={"kind": "access", "account": "nobody@example.org"})
    await call(daemon, "POST", "/privacy/requests/999/complete", 404)
    await call(daemon, "GET", "/privacy/requests", 400, params={"status": "later"})


async def test_the_openapi_document_describes_every_privacy_route(daemon):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/admin/v1/openapi.json") as response:
            document = await response.json()
    admin_app = next(r for r in daemon.app.router.resources() if r.canonical == "/admin/v1").get_info()["app"]
    mine = {
        (route.method.lower(), route.resource.canonical.removeprefix("/admin/v1"))
        for route in admin_app.router.routes()
        if route.method != "HEAD"
        and route.resource.canonical.removeprefix("/admin/v1").startswith(("/privacy", "/audit", "/mail"))
    }
    assert len(mine) >= 10
    for method, path in mine:
        assert method in document["paths"].get(path, {}), (method, path)
    assert document["paths"]["/accounts/{ref}"]["delete"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Erasure"
    }
