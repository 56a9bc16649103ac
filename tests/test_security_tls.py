"""TLS: `noor tls self-signed`, the daemon over HTTPS (the real OpenAI SDK trusting the generated
CA), `noor daemon` serving HTTPS, and upstream calls verified (system store or a provider's CA)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import aiohttp
import httpx2
import openai
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from daemon_process import free_port, noor_executable
from security_helpers import client_context, serve
from standin_upstream import UPSTREAM_OPENAI_SECRET, standin_config

from noor_daemon import config as config_module
from noor_daemon.cli import cli
from noor_daemon.state import ACCOUNTS
from noor_daemon.tls import make_self_signed

pytestmark = pytest.mark.engine_independent

TLS_SIM_CONFIG = """
[server]
tls_cert = "{cert}"
tls_key = "{key}"

[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{{ provider = "simulator" }}]
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    return make_self_signed(tmp_path_factory.mktemp("pki"), ["localhost", "127.0.0.1", "::1"])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def new_key(app, email: str = "tls@example.com") -> str:
    store = app[ACCOUNTS]
    account = await store.create_account(email, "free")
    return (await store.create_key(account.id)).secret


# -- noor tls self-signed ------------------------------------------------------------------


def test_self_signed_writes_a_ca_and_a_server_pair_with_private_key_files(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    result = CliRunner().invoke(cli, ["tls", "self-signed", "--out", str(out), "--hosts", "localhost,127.0.0.1,noor.lan"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["ca.pem", "cert.pem", "key.pem"], "the CA's key is never written"
    assert mode(out / "key.pem") == 0o600
    assert mode(out) == 0o700
    assert f'tls_cert = "{out / "cert.pem"}"' in result.output

    ca = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "noor.lan"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True

    again = CliRunner().invoke(cli, ["tls", "self-signed", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output, "existing files are not replaced silently"
    forced = CliRunner().invoke(cli, ["tls", "self-signed", "--out", str(out), "--force"])
    assert forced.exit_code == 0
    assert (out / "ca.pem").read_bytes() != ca.public_bytes(serialization_pem()), "a new CA each time"


def serialization_pem():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM


# -- HTTPS in-process, with the real OpenAI SDK ----------------------------------------------


async def test_openai_sdk_over_https_trusting_the_generated_ca(tmp_path: Path, pki) -> None:
    config = TLS_SIM_CONFIG.format(cert=pki.cert, key=pki.key)
    async with serve(config, tmp_path / "data") as served:
        assert served.url.startswith("https://")
        key = await new_key(served.app)
        async with httpx2.AsyncClient(verify=client_context(pki.ca)) as http:
            client = openai.AsyncOpenAI(api_key=key, base_url=f"{served.url}/v1", http_client=http, max_retries=0)
            reply = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
            assert reply.usage.total_tokens > 0

        # Without the CA the SDK refuses the connection: the certificate is really checked.
        async with httpx2.AsyncClient() as http:
            client = openai.AsyncOpenAI(api_key=key, base_url=f"{served.url}/v1", http_client=http, max_retries=0)
            with pytest.raises(openai.APIConnectionError):
                await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])

        # Plain HTTP to the TLS port gets nothing useful.
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{served.port}/healthz"):
                    pass


async def test_relative_tls_paths_are_relative_to_the_config_file(tmp_path: Path, pki) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "c.pem").write_bytes(pki.cert.read_bytes())
    key = conf_dir / "k.pem"
    key.write_bytes(pki.key.read_bytes())
    key.chmod(0o600)
    config = TLS_SIM_CONFIG.format(cert="c.pem", key="k.pem")
    async with serve(config, tmp_path / "data", config_path=conf_dir / "config.toml") as served:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{served.url}/healthz", ssl=client_context(pki.ca)) as r:
                assert r.status == 200


def test_tls_config_errors_are_clear(tmp_path: Path, pki) -> None:
    with pytest.raises(config_module.ConfigError, match=r"test.toml:1: server: tls_cert and tls_key go together"):
        config_module.parse(f'[server]\ntls_cert = "{pki.cert}"\n', "test.toml")
    with pytest.raises(config_module.ConfigError, match=r"admin_remote = true needs TLS"):
        config_module.parse("[server]\nadmin_remote = true\n", "test.toml")
    with pytest.raises(config_module.ConfigError, match=r"test.toml:6: providers.0.ca_bundle: cannot load CA bundle"):
        config_module.parse(
            '[[providers]]\nname = "lan"\nkind = "openai"\nbase_url = "https://vllm.lan/v1"\n\nca_bundle = "/nonexistent/ca.pem"\n'
            '[[models]]\nname = "m"\nroutes = [{ provider = "lan" }]\n',
            "test.toml",
        )


def test_a_world_readable_tls_key_is_refused(tmp_path: Path, pki) -> None:
    from noor_daemon.tls import server_ssl_context

    key = tmp_path / "key.pem"
    key.write_bytes(pki.key.read_bytes())
    key.chmod(0o644)
    loaded = config_module.LoadedConfig(config_module.parse(TLS_SIM_CONFIG.format(cert=pki.cert, key=key)), None)
    with pytest.raises(config_module.ConfigError, match="readable by every user"):
        server_ssl_context(loaded)


# -- `noor daemon` itself ----------------------------------------------------------------------


async def test_noor_daemon_serves_https_and_refuses_admin_remote_without_tls(tmp_path: Path, pki) -> None:
    config = tmp_path / "tls.toml"
    config.write_text(TLS_SIM_CONFIG.format(cert=pki.cert, key=pki.key))
    port = free_port()
    env = {**os.environ, "NOOR_ADMIN_TOKEN": "noor-admin-tls-subprocess", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "daemon.log"
    with open(log, "wb") as err:
        process = await asyncio.create_subprocess_exec(
            noor_executable(), "daemon", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--config", str(config),
            stdout=err, stderr=err, env=env,
        )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=client_context(pki.ca)) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError(log.read_text())
            async with http.get(
                f"https://127.0.0.1:{port}/admin/v1/usage/summary",
                ssl=client_context(pki.ca),
                headers={"Authorization": "Bearer noor-admin-tls-subprocess"},
            ) as r:
                assert r.status == 200
        assert f"listening on https://127.0.0.1:{port}" in log.read_text()
    finally:
        process.terminate()
        await process.wait()

    bad = tmp_path / "remote.toml"
    bad.write_text("[server]\nadmin_remote = true\n")
    refused = subprocess.run(
        [noor_executable(), "daemon", "--port", str(free_port()), "--data-dir", str(tmp_path / "data2"), "--config", str(bad)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert refused.returncode == 2
    assert "admin_remote = true needs TLS" in refused.stderr
    assert "Traceback" not in refused.stderr


# -- upstream calls verify TLS ---------------------------------------------------------------------


@pytest.fixture
async def https_standin(standin, pki):
    """The stand-in upstream also listening on HTTPS with the generated certificate."""
    from aiohttp import web

    site = web.TCPSite(standin._runner, "127.0.0.1", 0, ssl_context=_server_context(pki))  # noqa: SLF001
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    return standin, f"https://127.0.0.1:{port}/v1"


def _server_context(pki):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    return context


def _https_config(standin, base: str, ca_bundle: Path | None) -> str:
    text = standin_config(standin).replace(f'base_url = "{standin.openai_base}"', f'base_url = "{base}"', 1)
    if ca_bundle is not None:
        text = text.replace(f'base_url = "{base}"', f'base_url = "{base}"\nca_bundle = "{ca_bundle}"', 1)
    return text


async def test_upstream_tls_is_verified_and_a_provider_ca_bundle_is_trusted(start_daemon, https_standin, pki) -> None:
    standin, base = https_standin

    trusting = await start_daemon(_https_config(standin, base, pki.ca))
    key = await trusting.create_key("upstream-tls@example.com")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "over tls"}]}
        async with http.post(f"{trusting.base_url}/chat/completions", json=body) as r:
            assert r.status == 200, await r.text()
    assert standin.last.headers["Authorization"] == f"Bearer {UPSTREAM_OPENAI_SECRET}"
    seen = len(standin.requests)

    # The same upstream without its CA: the system trust store does not know it, so nothing is sent.
    untrusting = await start_daemon(_https_config(standin, base, None))
    key = await untrusting.create_key("upstream-tls@example.com")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        async with http.post(f"{untrusting.base_url}/chat/completions", json=body) as r:
            assert r.status == 502
    assert len(standin.requests) == seen, "no request (and no provider key) went to an unverified server"


def test_the_shared_client_session_verifies_certificates() -> None:
    """app.py's one ClientSession keeps aiohttp's default: verification on (no ssl=False anywhere)."""
    root = Path(__file__).parent.parent / "noor_daemon"
    for source in root.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "ssl=False" not in text and "verify_ssl=False" not in text and "CERT_NONE" not in text, source


def test_the_cli_reaches_an_https_daemon_trusting_noor_ca_bundle(tmp_path: Path, pki) -> None:
    from security_helpers import serve_in_thread

    config = TLS_SIM_CONFIG.format(cert=pki.cert, key=pki.key)
    with serve_in_thread(config, tmp_path / "data") as served:
        env = {"NOOR_URL": served.url, "NOOR_ADMIN_TOKEN": "noor-admin-test-token"}
        trusted = CliRunner().invoke(cli, ["key", "list", "--json"], env={**env, "NOOR_CA_BUNDLE": str(pki.ca)})
        assert trusted.exit_code == 0, trusted.output
        untrusted = CliRunner().invoke(cli, ["key", "list", "--json"], env=env)
        assert untrusted.exit_code == 3, "an unknown certificate is a failure to reach the daemon, not a warning"
        assert "certificate" in untrusted.stderr.lower() or "ssl" in untrusted.stderr.lower()
