"""Admin access: loopback only (a real non-loopback socket), remote only over TLS, the token
compared as a hash and rotated (the old one refused at once, only a hash on disk)."""

from __future__ import annotations

import hashlib
import json
import ssl
import stat
from pathlib import Path
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from click.testing import CliRunner
from security_helpers import client_context, non_loopback_address, serve, serve_in_thread

from noor_daemon import config as config_module
from noor_daemon.admin.errors import AdminError
from noor_daemon.admin.middleware import admin_auth
from noor_daemon.cli import cli
from noor_daemon.secret_store import (
    AdminVerifier,
    SecretError,
    admin_token_hash_file,
    daemon_admin_token,
    ensure_admin_token,
)
from noor_daemon.settings import DaemonSettings
from noor_daemon.state import ADMIN_TOKEN_HASH, LEDGER, SETTINGS
from noor_daemon.tls import make_self_signed

pytestmark = pytest.mark.engine_independent

SIM = """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator" }]
"""
TOKEN = "noor-admin-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def address() -> str:
    found = non_loopback_address()
    if found is None:
        pytest.skip("this machine has no non-loopback address to connect from (the middleware unit tests below still run)")
    return found


@pytest.fixture(scope="module")
def lan_pki(tmp_path_factory: pytest.TempPathFactory, address: str):
    return make_self_signed(tmp_path_factory.mktemp("lan-pki"), ["localhost", "127.0.0.1", address])


# -- a real socket from a non-loopback address ------------------------------------------------------


async def test_admin_api_refuses_a_non_loopback_client(tmp_path: Path, address: str) -> None:
    async with serve(SIM, tmp_path / "data", host="0.0.0.0") as served:
        async with aiohttp.ClientSession(headers=BEARER) as http:
            async with http.get(f"http://{address}:{served.port}/admin/v1/usage/summary") as r:
                assert r.status == 403
                error = (await r.json())["error"]
                assert error["code"] == "forbidden" and "loopback" in error["message"]
            async with http.get(f"http://{address}:{served.port}/admin/v1/openapi.json") as r:
                assert r.status == 403, "not even the open document"
            async with http.get(f"http://{address}:{served.port}/healthz") as r:
                assert r.status == 200, "the gateway itself answers the LAN"
            async with http.get(f"http://127.0.0.1:{served.port}/admin/v1/usage/summary") as r:
                assert r.status == 200, "loopback is answered"


async def test_admin_remote_answers_remote_clients_over_tls(tmp_path: Path, address: str, lan_pki) -> None:
    config = f'[server]\nadmin_remote = true\ntls_cert = "{lan_pki.cert}"\ntls_key = "{lan_pki.key}"\n' + SIM
    async with serve(config, tmp_path / "data", host="0.0.0.0") as served:
        async with aiohttp.ClientSession() as http:
            url = f"https://{address}:{served.port}/admin/v1/usage/summary"
            async with http.get(url, ssl=client_context(lan_pki.ca), headers=BEARER) as r:
                assert r.status == 200
            async with http.get(url, ssl=client_context(lan_pki.ca), headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401


# -- the middleware alone (the branches a socket cannot reach) -------------------------------------------


def _request(remote: str, *, admin_remote: bool, secure: bool, token: str = TOKEN) -> web.Request:
    tls = 'tls_cert = "/c"\ntls_key = "/k"\n' if admin_remote else ""
    config = config_module.parse(f"[server]\nadmin_remote = {str(admin_remote).lower()}\n{tls}" + SIM)
    app = web.Application()
    app[SETTINGS] = DaemonSettings(config_module.LoadedConfig(config, None), Path("/nonexistent"), TOKEN)
    app[ADMIN_TOKEN_HASH] = AdminVerifier.for_token(TOKEN)
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (remote, 40000) if name == "peername" else default
    return make_mocked_request("GET", "/admin/v1/usage/summary", headers={"Authorization": f"Bearer {token}"},
                               app=app, transport=transport, sslcontext=ssl.create_default_context() if secure else None)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.mark.parametrize(
    ("remote", "admin_remote", "secure", "status"),
    [
        ("127.0.0.1", False, False, 200),
        ("::1", False, False, 200),
        ("192.0.2.7", False, False, 403),
        ("192.0.2.7", False, True, 403),
        ("192.0.2.7", True, False, 403),  # remote allowed, but never in the clear
        ("192.0.2.7", True, True, 200),
        ("::ffff:192.0.2.7", False, False, 403),
    ],
)
async def test_middleware_decisions(remote: str, admin_remote: bool, secure: bool, status: int) -> None:
    request = _request(remote, admin_remote=admin_remote, secure=secure)
    try:
        response = await admin_auth(request, _ok)
        assert status == 200 and response.status == 200
    except AdminError as exc:
        assert exc.status == status


async def test_middleware_refuses_a_wrong_token_in_constant_time() -> None:
    with pytest.raises(AdminError) as refused:
        await admin_auth(_request("127.0.0.1", admin_remote=False, secure=False, token="noor-admin-wrong"), _ok)
    assert refused.value.status == 401
    verifier = AdminVerifier.for_token(TOKEN)
    assert verifier.matches(TOKEN) and not verifier.matches(TOKEN + "x") and not verifier.matches("")
    assert TOKEN not in repr(vars(verifier)), "the verifier holds a digest, never the token"


# -- rotation -----------------------------------------------------------------------------------------


async def test_rotation_switches_tokens_at_once_and_keeps_only_a_hash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with serve(SIM, data) as served:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{served.url}/admin/v1/admin-token/rotate", headers=BEARER) as r:
                assert r.status == 200
                assert r.headers["Cache-Control"] == "no-store"
                rotated = await r.json()
            new = rotated["token"]
            assert new.startswith("noor-admin-") and new != TOKEN
            async with http.get(f"{served.url}/admin/v1/usage/summary", headers=BEARER) as r:
                assert r.status == 401, "the old token stops working at once"
            async with http.get(f"{served.url}/admin/v1/usage/summary", headers={"Authorization": f"Bearer {new}"}) as r:
                assert r.status == 200
        entries = await served.app[LEDGER].fetchall("SELECT action, details FROM audit_log WHERE action = 'admin.token_rotated'")
        assert len(entries) == 1 and (entries[0]["details"] is None or new not in entries[0]["details"])

    hash_file = admin_token_hash_file(data)
    assert stat.S_IMODE(hash_file.stat().st_mode) == 0o600
    assert hash_file.read_text().strip() == hashlib.sha256(new.encode()).hexdigest()
    for file in data.rglob("*"):
        if file.is_file():
            assert new.encode() not in file.read_bytes(), f"the new token was written to {file}"

    # A restart trusts the rotated token's hash (and nothing else).
    restarted = daemon_admin_token(data)
    assert restarted.value == "" and AdminVerifier(restarted.digest, restarted.source).matches(new)
    assert not AdminVerifier(restarted.digest, restarted.source).matches(TOKEN)


async def test_rotation_is_refused_while_the_environment_sets_the_token(tmp_path: Path) -> None:
    async with serve(SIM, tmp_path / "data", source="env:NOOR_ADMIN_TOKEN") as served:
        async with aiohttp.ClientSession(headers=BEARER) as http:
            async with http.post(f"{served.url}/admin/v1/admin-token/rotate") as r:
                assert r.status == 409
                assert "NOOR_ADMIN_TOKEN" in (await r.json())["error"]["message"]
            async with http.get(f"{served.url}/admin/v1/usage/summary") as r:
                assert r.status == 200, "nothing changed"
    with pytest.raises(SecretError):
        AdminVerifier.for_token(TOKEN, "env:NOOR_ADMIN_TOKEN").rotate()


def test_noor_admin_rotate_token_prints_once_and_updates_the_token_file(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    first = ensure_admin_token(data)  # no keyring here: a 0600 file in the data dir, as at first start
    assert first.source == str(data / "admin_token")
    assert stat.S_IMODE((data / "admin_token").stat().st_mode) == 0o600
    with serve_in_thread(SIM, data, token=first.value, source=first.source) as served:
        env = {"NOOR_URL": served.url, "NOOR_DATA_DIR": str(data)}
        result = CliRunner().invoke(cli, ["admin", "rotate-token"], env=env)
        assert result.exit_code == 0, result.output
        new = result.stdout.strip()
        assert new.startswith("noor-admin-") and new != first.value
        assert result.stdout.count(new) == 1
        assert "old one no longer works" in result.stderr and "Saved to" in result.stderr
        assert (data / "admin_token").read_text().strip() == new
        assert stat.S_IMODE((data / "admin_token").stat().st_mode) == 0o600

        # The CLI keeps working with the saved token; the old token is refused.
        listed = CliRunner().invoke(cli, ["key", "list", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        stale = CliRunner().invoke(cli, ["key", "list"], env={**env, "NOOR_ADMIN_TOKEN": first.value})
        assert stale.exit_code == 1 and "401" in stale.stderr

        second = CliRunner().invoke(cli, ["admin", "rotate-token", "--no-save", "--json"], env=env)
        assert second.exit_code == 0
        newer = json.loads(second.stdout)
        assert newer["saved_to"] is None and (data / "admin_token").read_text().strip() == new
