"""The CLI as a daemon's everyday companion: it finds the daemon from the config file alone, `noor usage` alone
prints the summary, `noor key create` says what it prints before the key, `noor demo` in a pipe prints its
summary and exits, and `/healthz` says `simulator_only` from what the config serves."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from daemon_process import ADMIN_TOKEN, free_port, noor_executable
from standin_upstream import standin_config

from noor_daemon.cli.common import configured_url
from noor_daemon.client import DEFAULT_URL

pytestmark = pytest.mark.engine_independent

SIMULATOR_FILE = """
[server]
port = {port}
shutdown_timeout = 1

[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{{ provider = "simulator" }}]
"""


def run(*args: str, env: dict[str, str], timeout: float = 60, stderr: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("NOOR_URL", "NOOR_CONFIG")}
    return subprocess.run([noor_executable(), *args], check=False, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout,
                          env={**clean, **env}, stdin=subprocess.DEVNULL)


@pytest.fixture
async def configured_daemon(tmp_path: Path):
    """`noor daemon --config FILE` with no --port: it listens where the file's [server] says."""
    port = free_port()
    config = tmp_path / "noor.toml"
    config.write_text(SIMULATOR_FILE.format(port=port))
    env = {**os.environ, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    process = await asyncio.create_subprocess_exec(
        noor_executable(), "daemon", "--config", str(config), "--data-dir", str(tmp_path / "data"),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the daemon did not start")
        yield config, port
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)


async def test_the_cli_reaches_a_daemon_on_another_port_from_the_config_alone(configured_daemon) -> None:
    config, port = configured_daemon
    env = {"NOOR_CONFIG": str(config), "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    created = await asyncio.to_thread(run, "account", "create", "cli@example.com", env=env)
    assert created.returncode == 0, created.stderr
    doctor = json.loads((await asyncio.to_thread(run, "doctor", "--json", env=env)).stdout)
    assert doctor["daemon"]["url"] == f"http://127.0.0.1:{port}"
    assert doctor["daemon"]["reachable"] is True and doctor["daemon"]["admin_token_accepted"] is True
    assert doctor["daemon"]["simulator_only"] is True  # a file that names only the simulator
    # `noor doctor --config FILE` too, with nothing in the environment; --url still wins.
    named = await asyncio.to_thread(run, "doctor", "--json", "--config", str(config), env={"NOOR_ADMIN_TOKEN": ADMIN_TOKEN})
    assert json.loads(named.stdout)["daemon"]["reachable"] is True
    elsewhere = await asyncio.to_thread(run, "account", "list", "--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert elsewhere.returncode == 3


async def test_usage_alone_prints_the_summary_and_key_create_says_what_it_prints_first(configured_daemon) -> None:
    config, _ = configured_daemon
    env = {"NOOR_CONFIG": str(config), "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    assert (await asyncio.to_thread(run, "account", "create", "usage@example.com", env=env)).returncode == 0
    # stdout and stderr into one pipe, as a terminal shows them: the header, then the key, then the advice.
    merged = await asyncio.to_thread(run, "key", "create", "--account", "usage@example.com", env=env, stderr=subprocess.STDOUT)
    lines = merged.stdout.splitlines()
    assert lines[0].startswith("Created key ") and lines[1].startswith("sk-noor-") and lines[2].startswith("Store it now"), lines
    key = lines[1]
    async with aiohttp.ClientSession() as http:
        url = configured_url(str(config))
        body = {"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 200
    alone = await asyncio.to_thread(run, "usage", env=env)
    summary = await asyncio.to_thread(run, "usage", "summary", env=env)
    assert alone.returncode == 0 and alone.stdout == summary.stdout
    assert "sim-gpt" in alone.stdout and "Usage in the last 24 h" in alone.stdout


def test_configured_url_follows_host_port_and_tls(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    assert configured_url(str(tmp_path / "absent.toml")) == DEFAULT_URL  # a named file that is not there
    for server, url in [
        ('port = 9001', "http://127.0.0.1:9001"),
        ('host = "0.0.0.0"\nport = 9002', "http://127.0.0.1:9002"),  # listening everywhere: reach it here
        ('host = "::"\nport = 9003', "http://[::1]:9003"),
        ('host = "noor.lan"\ntls_cert = "c.pem"\ntls_key = "k.pem"', "https://noor.lan:8787"),
        ('port = "not a port"', DEFAULT_URL),  # unreadable [server]: the default, as before
    ]:
        config.write_text(f"[server]\n{server}\n\n[retention]\nusage_days = 9\n")
        assert configured_url(str(config)) == url, server
    config.write_text("[server]\nport = 9004\n\n[[models]]\nname = 'half-written'\n")  # another section mid-edit
    assert configured_url(str(config)) == "http://127.0.0.1:9004"


def test_demo_without_a_terminal_prints_the_summary_and_exits_within_5_s(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run("demo", env={"XDG_DATA_HOME": str(tmp_path)}, timeout=30)  # stdin and stdout are not terminals
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "not a terminal" in result.stderr
    assert "TOTAL" in result.stdout and "\x1b[" not in result.stdout  # the summary, no screen drawing
    assert elapsed < 5, f"noor demo took {elapsed:.1f} s without a terminal"


async def test_healthz_says_simulator_only_from_the_config_in_force(start_daemon, standin) -> None:
    # Built from text (no file): the old answer said "simulator only" for any daemon without a file.
    daemon = await start_daemon(standin_config(standin))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/healthz") as r:
            assert (await r.json())["simulator_only"] is False
        async with http.get(f"{daemon.url}/admin/v1/doctor", headers=daemon.admin_headers) as r:
            assert (await r.json())["config"]["simulator_only"] is False
