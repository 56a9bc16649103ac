"""Calls through a real forward proxy (proxy.py, started here) to an HTTPS stand-in with its own CA: JSON and
streams with HTTPS_PROXY, with a provider's own `proxy`, with proxy credentials (keyring, env reference,
the variable's URL), NO_PROXY going direct, TLS verified end to end through the tunnel, plain HTTP through
HTTP_PROXY, health probes on the same path; a proxy that refuses CONNECT is a clear 502 and a clear
`noor doctor` line, which never shows a password."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from gateway_helpers import openai_client, wait_for_rows
from security_helpers import memory_keyring

from benchmarks.closing_upstream import ClosingUpstream
from noor_daemon.cli import cli
from noor_daemon.secret_store import SERVICE
from noor_daemon.state import PROXY
from noor_daemon.tls import make_self_signed

pytestmark = pytest.mark.engine_independent

KEY_ENV = "PROXIED_UPSTREAM_KEY"
PROXY_USER, PROXY_PASSWORD = "noor", "proxy-pass-4f2b9c"
MESSAGES = [{"role": "user", "content": "say ok"}]


class ForwardProxy:
    """proxy.py in its own process on a loopback port; its access log says which tunnels it opened."""

    def __init__(self, directory: Path, name: str, *options: str) -> None:
        self.log = directory / f"{name}.log"
        port_file = directory / f"{name}.port"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
                 "--num-workers", "1", "--num-acceptors", "1", *options],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"proxy.py did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def tunnels_to(self, port: int, timeout: float = 5.0) -> int:
        """CONNECTs to 127.0.0.1:`port` in the access log (written as each tunnel closes)."""
        return self._logged(rf"CONNECT 127\.0\.0\.1:{port}\b", timeout)

    def forwarded_to(self, port: int, timeout: float = 5.0) -> int:
        """Plain-HTTP requests it forwarded to 127.0.0.1:`port`."""
        return self._logged(rf"POST 127\.0\.0\.1:{port}/v1/chat/completions - 200", timeout)

    def _logged(self, pattern: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            found = len(re.findall(pattern, self.log.read_text(errors="replace")))
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    directory = tmp_path_factory.mktemp("proxies")
    started = {
        "open": ForwardProxy(directory, "open"),
        "auth": ForwardProxy(directory, "auth", "--basic-auth", f"{PROXY_USER}:{PROXY_PASSWORD}"),
        "refusing": ForwardProxy(directory, "refusing", "--plugins", "proxy.plugin.FilterByUpstreamHostPlugin",
                                 "--filtered-upstream-hosts", "127.0.0.1"),
    }
    yield started
    for proxy in started.values():
        proxy.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_self_signed(tmp_path_factory.mktemp("tls"), ["127.0.0.1", "localhost"])


@pytest.fixture
async def https_upstream(tls, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, "sk-proxied-upstream")
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    server = await ClosingUpstream(idle_range=(30, 30)).start(ssl_context=context)
    yield server
    await server.stop()


def provider_config(upstream: ClosingUpstream, tls, provider_lines: str = "", server_lines: str = "") -> str:
    trust = f'ca_bundle = "{tls.ca}"' if tls is not None else ""
    return f"""
[server]
{server_lines}

[[providers]]
name = "proxied"
kind = "openai"
base_url = "{upstream.base_url}"
api_key = "env:{KEY_ENV}"
{trust}
{provider_lines}

[[models]]
name = "gpt-test"
routes = [{{ provider = "proxied", model = "standin" }}]
"""


async def json_and_stream(daemon, email: str = "proxied@example.com") -> None:
    client = openai_client(daemon, await daemon.create_key(email))
    completion = await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.choices[0].message.content == "ok ok ok"
    chunks = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    events = [c async for c in chunks]
    assert "".join(c.choices[0].delta.content for c in events if c.choices) == "ok ok ok "
    assert events[-1].usage.completion_tokens == 3
    rows = await wait_for_rows(daemon, 2)
    assert [(r["status"], r["stream"]) for r in rows] == [(200, 0), (200, 1)]


async def stop(daemon) -> None:
    """Close the daemon's connections, so the proxy writes the tunnels' access-log lines."""
    assert daemon.runner is not None
    await daemon.runner.cleanup()


async def test_https_proxy_from_the_environment_carries_json_and_streams(start_daemon, https_upstream, tls, proxies,
                                                                         monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", proxies["open"].url)
    daemon = await start_daemon(provider_config(https_upstream, tls))
    await json_and_stream(daemon)
    await stop(daemon)
    assert proxies["open"].tunnels_to(https_upstream.port) >= 1
    assert https_upstream.paths == ["POST /v1/chat/completions"] * 2


async def test_a_providers_own_proxy_with_credentials_from_the_keyring(start_daemon, https_upstream, tls, proxies):
    with memory_keyring() as ring:
        ring.set_password(SERVICE, "corp-proxy", f"{PROXY_USER}:{PROXY_PASSWORD}")
        config = provider_config(https_upstream, tls, f'proxy = "{proxies["auth"].url}"\nproxy_auth = "keyring:corp-proxy"')
        daemon = await start_daemon(config)
        await json_and_stream(daemon)
    await stop(daemon)
    assert proxies["auth"].tunnels_to(https_upstream.port) >= 1


async def test_credentials_as_a_reference_in_the_proxy_url_or_in_the_variables_url(start_daemon, https_upstream, tls,
                                                                                    proxies, monkeypatch):
    monkeypatch.setenv("PROXY_PASSWORD", PROXY_PASSWORD)
    by_reference = proxies["auth"].url.replace("http://", f"http://{PROXY_USER}:env:PROXY_PASSWORD@")
    daemon = await start_daemon(provider_config(https_upstream, tls, f'proxy = "{by_reference}"'))
    await json_and_stream(daemon, "reference@example.com")
    monkeypatch.setenv("HTTPS_PROXY", proxies["auth"].url.replace("http://", f"http://{PROXY_USER}:{PROXY_PASSWORD}@"))
    daemon = await start_daemon(provider_config(https_upstream, tls))
    await json_and_stream(daemon, "variable@example.com")


async def test_a_proxy_asking_for_credentials_that_were_not_given_is_a_clear_502(start_daemon, https_upstream, tls,
                                                                                  proxies):
    daemon = await start_daemon(provider_config(https_upstream, tls, f'proxy = "{proxies["auth"].url}"'))
    client = openai_client(daemon, await daemon.create_key("noauth@example.com"))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "forward proxy refused CONNECT: 407" in caught.value.body["message"]
    assert https_upstream.requests == 0


async def test_no_proxy_goes_direct_and_without_it_the_variable_is_honoured(start_daemon, https_upstream, tls,
                                                                           monkeypatch):
    with socket.socket() as unused:  # a port where no proxy listens: going through it cannot work
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
    monkeypatch.setenv("HTTPS_PROXY", dead)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    await json_and_stream(await start_daemon(provider_config(https_upstream, tls)), "noproxy@example.com")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    daemon = await start_daemon(provider_config(https_upstream, tls))
    client = openai_client(daemon, await daemon.create_key("through@example.com"))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == 502 and "could not connect" in caught.value.body["message"]
    daemon = await start_daemon(provider_config(https_upstream, tls, server_lines="trust_env = false"))
    await json_and_stream(daemon, "untrusted-env@example.com")


async def test_tls_is_verified_end_to_end_through_the_tunnel(start_daemon, https_upstream, proxies, monkeypatch):
    """Without the provider's CA the certificate is refused: the proxy never terminates the provider's TLS."""
    monkeypatch.setenv("HTTPS_PROXY", proxies["open"].url)
    daemon = await start_daemon(provider_config(https_upstream, None))
    client = openai_client(daemon, await daemon.create_key("tls@example.com"))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == 502 and "SSLCertVerificationError" in caught.value.body["message"]
    assert https_upstream.requests == 0


async def test_plain_http_providers_go_through_http_proxy(start_daemon, proxies, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-proxied-upstream")
    monkeypatch.setenv("HTTP_PROXY", proxies["open"].url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    upstream = await ClosingUpstream(idle_range=(30, 30)).start()
    try:
        daemon = await start_daemon(provider_config(upstream, None))
        await json_and_stream(daemon, "plain@example.com")
        await stop(daemon)
        assert upstream.paths == ["POST /v1/chat/completions"] * 2
        assert proxies["open"].forwarded_to(upstream.port) >= 1  # one log line per kept-alive connection
    finally:
        await upstream.stop()


async def test_health_probes_take_the_proxy_too(start_daemon, https_upstream, tls, proxies):
    daemon = await start_daemon(provider_config(https_upstream, tls, f'proxy = "{proxies["open"].url}"'))
    (route,) = daemon.app[PROXY].router.routes("gpt-test", "chat/completions")
    assert await route.upstream.probe() is True
    assert https_upstream.paths == ["GET /v1/models"]
    refused = await start_daemon(provider_config(https_upstream, tls, f'proxy = "{proxies["refusing"].url}"'))
    (route,) = refused.app[PROXY].router.routes("gpt-test", "chat/completions")
    assert await route.upstream.probe() is False
    assert https_upstream.paths == ["GET /v1/models"]


async def test_a_proxy_that_refuses_connect_is_a_clear_502_and_a_clear_doctor_line(start_daemon, https_upstream, tls,
                                                                                    proxies, tmp_path):
    config = provider_config(https_upstream, tls, f'proxy = "{proxies["refusing"].url}"')
    daemon = await start_daemon(config)
    client = openai_client(daemon, await daemon.create_key("refused@example.com"))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.body["message"] == (
        "Upstream provider 'proxied': could not connect: the forward proxy refused CONNECT (418)"
    )
    assert (await wait_for_rows(daemon, 1))[0]["status"] == 502
    path = tmp_path / "refusing.toml"
    path.write_text(config)
    output = await _doctor(path)
    assert f"proxy        proxied: through {proxies['refusing'].url} (its own proxy setting); NO TUNNEL: " \
           "the forward proxy refused CONNECT (418)" in output


async def test_doctor_names_each_providers_proxy_and_never_a_password(https_upstream, tls, proxies, monkeypatch, tmp_path):
    monkeypatch.setenv("HTTPS_PROXY", proxies["auth"].url.replace("http://", f"http://{PROXY_USER}:{PROXY_PASSWORD}@"))
    path = tmp_path / "env.toml"
    path.write_text(provider_config(https_upstream, tls))
    output = await _doctor(path)
    assert (f"proxy        proxied: through {proxies['auth'].url} (HTTPS_PROXY, credentials from HTTPS_PROXY); "
            "a tunnel to the provider opened, its certificate verified") in output
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert "proxy        proxied: direct (its host is in NO_PROXY)" in await _doctor(path)
    as_json = await _doctor(path, "--json")
    assert PROXY_PASSWORD not in output and PROXY_PASSWORD not in as_json and PROXY_USER + ":" not in output


async def _doctor(config: Path, *options: str) -> str:
    """`noor doctor` in a thread: it runs its own event loop, and the stand-in answers on this one."""
    import asyncio

    def run() -> str:
        result = CliRunner().invoke(cli, ["doctor", "--config", str(config), "--url", "http://127.0.0.1:9", *options])
        assert result.exit_code == 0, result.output
        return result.output

    return await asyncio.to_thread(run)
