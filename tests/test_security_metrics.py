"""`/metrics` follows the admin API's rule: loopback only, unless `[server] metrics_remote` (TLS only, and the
metrics token when one is set). Real sockets from a non-loopback address of this machine."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from security_helpers import client_context, non_loopback_address, serve

from noor_daemon import config as config_module
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


@pytest.fixture(scope="module")
def address() -> str:
    found = non_loopback_address()
    if found is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    return found


@pytest.fixture(scope="module")
def lan_pki(tmp_path_factory: pytest.TempPathFactory, address: str):
    return make_self_signed(tmp_path_factory.mktemp("lan-pki"), ["localhost", "127.0.0.1", address])


async def test_metrics_refuses_the_network_by_default(tmp_path: Path, address: str) -> None:
    async with serve(SIM, tmp_path / "data", host="0.0.0.0") as served:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{address}:{served.port}/metrics") as r:
                assert r.status == 403
                assert "metrics_remote" in (await r.json())["error"]["message"]
                assert "noor_requests" not in await r.text()
            async with http.get(f"http://127.0.0.1:{served.port}/metrics") as r:
                assert r.status == 200 and "noor_requests" in await r.text()


async def test_metrics_remote_needs_tls_and_its_token(tmp_path: Path, address: str, lan_pki, monkeypatch) -> None:
    monkeypatch.setenv("NOOR_TEST_METRICS_TOKEN", "scrape-me-0123456789")
    config = (f'[server]\nmetrics_remote = true\nmetrics_token = "env:NOOR_TEST_METRICS_TOKEN"\n'
              f'tls_cert = "{lan_pki.cert}"\ntls_key = "{lan_pki.key}"\n' + SIM)
    async with serve(config, tmp_path / "data", host="0.0.0.0") as served:
        url = f"https://{address}:{served.port}/metrics"
        async with aiohttp.ClientSession() as http:
            async with http.get(url, ssl=client_context(lan_pki.ca)) as r:
                assert r.status == 403 and "token" in (await r.json())["error"]["message"]
            async with http.get(url, ssl=client_context(lan_pki.ca), headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 403
            async with http.get(url, ssl=client_context(lan_pki.ca), headers={"Authorization": "Bearer scrape-me-0123456789"}) as r:
                assert r.status == 200 and "noor_requests" in await r.text()


def test_metrics_remote_without_tls_is_refused_by_the_config() -> None:
    with pytest.raises(config_module.ConfigError, match="metrics_remote = true needs TLS"):
        config_module.parse("[server]\nmetrics_remote = true\n" + SIM)
    with pytest.raises(config_module.ConfigError, match="secret reference"):
        config_module.parse('[server]\nmetrics_token = "plain-token"\n' + SIM)
