"""Key hygiene: revoking a leaked key by its display prefix alone (API and CLI; ambiguous prefixes
refused), and `noor key list --stale 90d`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from security_helpers import key_with_prefix, serve_in_thread

from noor_daemon.cli import cli
from noor_daemon.cli.key import stale_keys
from noor_daemon.client import KeyInfo
from noor_daemon.clock import ManualClock
from noor_daemon.ledger import accounts as accounts_module
from noor_daemon.state import ACCOUNTS

DAY = 86400
SIM = """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator" }]
"""


async def _revoke(daemon, prefix: object) -> tuple[int, dict]:
    async with aiohttp.ClientSession(headers=daemon.admin_headers) as http:
        async with http.post(f"{daemon.url}/admin/v1/keys/revoke-by-prefix", json={"prefix": prefix}) as r:
            return r.status, await r.json()


async def _models_status(daemon, key: str) -> int:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        async with http.get(f"{daemon.base_url}/models") as r:
            return r.status


async def test_revoke_by_display_prefix(daemon) -> None:
    leaked = await daemon.create_key("leak@example.com")
    other = await daemon.create_key("leak@example.com")
    assert await _models_status(daemon, leaked) == 200

    status, body = await _revoke(daemon, leaked[:14])
    assert status == 200, body
    assert body["state"] == "revoked" and body["already_revoked"] is False and body["prefix"] == leaked[:14]
    assert "key" not in body and "key_hash" not in body
    assert await _models_status(daemon, leaked) == 401, "refused at once"
    assert await _models_status(daemon, other) == 200, "only that key"

    status, body = await _revoke(daemon, leaked[:14] + "…")  # pasted as `noor key list` shows it
    assert status == 200 and body["already_revoked"] is True


@pytest.mark.parametrize(
    ("prefix", "status"),
    [
        ("sk-noor-AbC", 400),  # shorter than a display prefix: too easy to hit the wrong key
        ("sk-proj-AbC123", 400),
        ("", 400),
        (42, 400),
        ("sk-noor-Zz9Zz9", 404),
        ("sk-noor-Zz9Zz9" + "x" * 20, 400),  # longer than a prefix but not a whole key
    ],
)
async def test_bad_prefixes(daemon, prefix: object, status: int) -> None:
    await daemon.create_key("bad-prefix@example.com")
    got, body = await _revoke(daemon, prefix)
    assert got == status, body
    assert body["error"]["status"] == status


async def test_an_ambiguous_prefix_revokes_nothing(daemon, monkeypatch) -> None:
    twins = iter([key_with_prefix("Tw1nKy"), key_with_prefix("Tw1nKy")])
    monkeypatch.setattr(accounts_module, "generate_key", lambda: next(twins))
    first = await daemon.create_key("twins@example.com")
    second = await daemon.create_key("twins@example.com")
    assert first[:14] == second[:14] and first != second

    status, body = await _revoke(daemon, "sk-noor-Tw1nKy")
    assert status == 409 and body["error"]["code"] == "ambiguous_prefix"
    assert "2 keys share that prefix" in body["error"]["message"]
    assert await _models_status(daemon, first) == 200 and await _models_status(daemon, second) == 200

    status, body = await _revoke(daemon, second)  # the whole key settles it
    assert status == 200 and body["state"] == "revoked"
    assert await _models_status(daemon, first) == 200 and await _models_status(daemon, second) == 401

    status, body = await _revoke(daemon, "sk-noor-Tw1nKy")  # now only one live key has it
    assert status == 200 and body["already_revoked"] is False
    assert await _models_status(daemon, first) == 401


def test_other_methods_on_the_prefix_route_are_405(daemon_url_sync) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{daemon_url_sync}/admin/v1/keys/revoke-by-prefix", method="GET",
                                     headers={"Authorization": "Bearer noor-admin-test-token"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == "POST"


@pytest.fixture
def daemon_url_sync(tmp_path: Path):
    with serve_in_thread(SIM, tmp_path / "data") as served:
        yield served.url


# -- the CLI -------------------------------------------------------------------------------------


def _key_info(id_: str, state: str, created: float, used: float | None) -> KeyInfo:
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
    return KeyInfo(id_, "acct_1", "sk-noor-AbC123", "sk-noor-AbC123…", None, None, None, "active", state,
                   iso(created), None, None, iso(used) if used else None)


def test_stale_keys_are_unused_or_never_used_for_longer_than_the_limit() -> None:
    now = time.time()
    keys = [
        _key_info("old-never-used", "active", now - 100 * DAY, None),
        _key_info("old-but-used", "active", now - 400 * DAY, now - 3 * DAY),
        _key_info("used-long-ago", "suspended", now - 400 * DAY, now - 120 * DAY),
        _key_info("new", "active", now - 10 * DAY, None),
        _key_info("revoked", "revoked", now - 400 * DAY, None),
        _key_info("expired", "expired", now - 400 * DAY, None),
    ]
    assert [k.id for k in stale_keys(keys, 90 * DAY, now)] == ["old-never-used", "used-long-ago"]


def test_noor_key_list_stale_and_revoke_by_prefix(tmp_path: Path) -> None:
    """Keys created 100 days ago on the daemon's clock; one of them used today."""
    import asyncio

    data = tmp_path / "data"
    with serve_in_thread(SIM, data) as served:
        env = {"NOOR_URL": served.url, "NOOR_ADMIN_TOKEN": "noor-admin-test-token"}
        store = served.app[ACCOUNTS]
        clock = ManualClock(start=time.time() - 100 * DAY)

        async def make() -> tuple[str, str, str]:
            store.clock = clock
            account = await store.create_account("stale@example.com", "free")
            old = (await store.create_key(account.id, name="forgotten")).secret
            busy = (await store.create_key(account.id, name="busy")).secret
            clock.advance(100 * DAY)
            fresh = (await store.create_key(account.id, name="fresh")).secret
            return old, busy, fresh

        old, busy, fresh = asyncio.run_coroutine_threadsafe(make(), served.loop).result(10)
        _use(served.url, busy)

        result = CliRunner().invoke(cli, ["key", "list", "--stale", "90d", "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert [k["name"] for k in json.loads(result.stdout)] == ["forgotten"]
        table = CliRunner().invoke(cli, ["key", "list", "--stale", "90d"], env=env)
        assert "forgotten" in table.stdout and "busy" not in table.stdout and old not in table.stdout
        assert CliRunner().invoke(cli, ["key", "list", "--stale", "soon"], env=env).exit_code == 2

        revoked = CliRunner().invoke(cli, ["key", "revoke", old[:14]], env=env)
        assert revoked.exit_code == 0, revoked.output
        assert f"({old[:14]}…)" in revoked.stdout
        assert "No stale keys." in CliRunner().invoke(cli, ["key", "list", "--stale", "90d"], env=env).stdout
        missing = CliRunner().invoke(cli, ["key", "revoke", "sk-noor-Zz9Zz9"], env=env)
        assert missing.exit_code == 1 and "404" in missing.stderr
        assert fresh


def _use(url: str, key: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
