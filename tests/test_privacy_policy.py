"""Policy versions: a material change is announced at least 14 days ahead, every account gets a
notice mail at once, and the admin API shows the current and upcoming versions."""

from __future__ import annotations

import aiohttp
from privacy_helpers import eventually, smtp  # noqa: F401

from noor_daemon.clock import ManualClock
from noor_daemon.state import LEDGER

DAY = 86_400
START = 1_760_000_000.0  # 2025-10-09 08:53:20 UTC


async def call(daemon, method: str, path: str, expect: int = 200, **kwargs):
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.request(method, f"{daemon.url}/admin/v1{path}", **kwargs) as response:
            body = await response.json()
            assert response.status == expect, body
            return body


async def test_a_material_change_needs_14_days_notice_and_reaches_every_account(start_daemon, smtp):
    clock = ManualClock(START)
    daemon = await start_daemon(smtp.config(), clock=clock)
    emails = [f"person{i}@example.org" for i in range(3)]
    for email in emails:
        await call(daemon, "POST", "/accounts", 201, json={"email": email})
    await eventually(lambda: len(smtp.recorder.received) == 3, what="the welcome mails")

    too_soon = await call(
        daemon, "POST", "/privacy/policies", 400,
        json={"effective": "2025-10-22", "summary": "Usage logs are kept 120 days.", "material": True},
    )
    message = too_soon["error"]["message"]
    assert "at least 14 days" in message and "2025-10-24" in message  # the first midnight 14 days out
    assert (await call(daemon, "GET", "/privacy/policies"))["upcoming"] == []

    published = await call(
        daemon, "POST", "/privacy/policies", 201,
        json={"effective": "2025-10-24", "summary": "Usage logs are kept 120 days.", "material": True,
              "url": "https://gateway.example/privacy"},
    )
    assert published["version"] == 1 and published["material"] is True and published["notices"] == 3
    assert published["effective_at"] == "2025-10-24T00:00:00.000Z"
    await eventually(lambda: len(smtp.recorder.received) == 6, what="a notice to every account")
    for email in emails:
        notice = [r for r in smtp.recorder.to(email) if "privacy policy" in r.message["Subject"]][0].message
        text = notice.get_body(("plain",)).get_content()
        assert "Usage logs are kept 120 days." in text and "2025-10-24" in text and "14 days" in text
        assert "https://gateway.example/privacy" in text

    overview = await call(daemon, "GET", "/privacy/policies")
    assert overview["current"] is None and [v["version"] for v in overview["upcoming"]] == [1]
    clock.advance(15 * DAY)
    overview = await call(daemon, "GET", "/privacy/policies")
    assert overview["current"]["version"] == 1 and overview["upcoming"] == []

    entry = await daemon.app[LEDGER].fetchone("SELECT * FROM audit_log WHERE action = 'policy.published'")
    assert entry["target_id"] == "1" and '"notices": 3' in entry["details"] and "@" not in entry["details"]


async def test_a_minor_change_may_take_effect_sooner(start_daemon, smtp):
    clock = ManualClock(START)
    daemon = await start_daemon(smtp.config(), clock=clock)
    await call(daemon, "POST", "/accounts", 201, json={"email": "minor@example.org"})
    minor = await call(
        daemon, "POST", "/privacy/policies", 201,
        json={"effective": "2025-10-10", "summary": "Clearer wording; nothing changes.", "material": False, "notify": False},
    )
    assert minor["material"] is False and minor["notices"] == 0
    material = await call(
        daemon, "POST", "/privacy/policies", 201,
        json={"effective": "2025-11-01T00:00:00Z", "summary": "A new processor.", "material": True},
    )
    overview = await call(daemon, "GET", "/privacy/policies")
    assert [v["version"] for v in overview["upcoming"]] == [minor["version"], material["version"]]
    clock.advance(DAY)
    overview = await call(daemon, "GET", "/privacy/policies")
    assert overview["current"]["version"] == minor["version"]
    assert [v["version"] for v in overview["upcoming"]] == [material["version"]]


async def test_publishing_checks_its_input(daemon):
    for body, needle in (
        ({"summary": "x"}, "effective"),
        ({"effective": "2020-01-01", "summary": "x", "material": False}, "in the past"),
        ({"effective": "next week", "summary": "x"}, "YYYY-MM-DD"),
        ({"effective": "2099-01-01T00:00:00", "summary": "x"}, "time zone"),
        ({"effective": "2099-01-01", "summary": " "}, "summary"),
        ({"effective": "2099-01-01", "summary": "x", "material": "yes"}, "true or false"),
        ({"effective": "2099-01-01", "summary": "x", "notify": False}, "must be announced"),
        ({"effective": "2099-01-01", "summary": "x", "url": "javascript:alert(1)"}, "http"),
    ):
        error = await call(daemon, "POST", "/privacy/policies", 400, json=body)
        assert needle in error["error"]["message"], (body, error)
