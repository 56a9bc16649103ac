"""`noor service`: the systemd user unit (checked by `systemd-analyze verify` when it is installed), the launchd
agent, what install and uninstall ask of the service manager, and the daemon's side of `Type=notify`: READY=1
once it answers, STOPPING=1 on SIGTERM, and SIGHUP reloading as before.

No systemd runs in the test machine's container, so install/uninstall are checked against a `systemctl` on
PATH that records what it is asked; the unit itself goes through the real `systemd-analyze verify`.
"""

from __future__ import annotations

import asyncio
import os
import plistlib
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import aiohttp
import pytest
from daemon_process import ADMIN_TOKEN, free_port, noor_executable

pytestmark = pytest.mark.engine_independent

SANDBOX = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([noor_executable(), *args], check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    file = tmp_path / "my config.toml"  # a space: the unit must quote it
    file.write_text("[server]\nshutdown_timeout = 20\n")
    return file


def test_the_unit_runs_the_daemon_sandboxed_and_notifies(config: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run("service", "install", "--dry-run", "--platform", "systemd", "--config", str(config), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    unit = result.stdout
    assert result.stderr.strip() == f"# {tmp_path / 'xdg-config' / 'systemd' / 'user' / 'noor.service'}"
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["ExecStart"] == f'{noor_executable()} daemon --data-dir {data} --config "{config}"'
    assert settings["Type"] == "notify"  # started once it says READY=1
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["KillSignal"] == "SIGTERM" and settings["TimeoutStopSec"] == "35"  # shutdown_timeout + 15
    assert settings["Restart"] == "on-failure"
    assert settings["ReadWritePaths"] == str(data)
    assert settings["WantedBy"] == "default.target"
    for directive in SANDBOX:
        assert directive in unit.splitlines()
    assert not data.exists(), "--dry-run changes nothing"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(config: Path, tmp_path: Path) -> None:
    unit = tmp_path / "units" / "noor.service"
    unit.parent.mkdir()
    unit.write_text(run("service", "install", "--dry-run", "--platform", "systemd", "--config", str(config)).stdout)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    verified = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], check=False, capture_output=True, text=True,
                              timeout=60, env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "" and verified.stdout.strip() == "", verified.stderr  # no warning either
    broken = unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=sometimes")
    unit.write_text(broken)
    refused = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], check=False, capture_output=True, text=True,
                             timeout=60, env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert "protect system" in refused.stderr.lower(), "the verifier is really reading the file"


def test_the_launchd_agent(config: Path, tmp_path: Path) -> None:
    result = run("service", "install", "--dry-run", "--platform", "launchd", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    agent = plistlib.loads(result.stdout.encode())
    assert agent["Label"] == "org.noorapi.daemon"
    assert agent["ProgramArguments"] == [noor_executable(), "daemon", "--data-dir", str(tmp_path / "d"), "--config", str(config)]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["ExitTimeOut"] == 35 and agent["Umask"] == 0o077
    assert agent["StandardErrorPath"].endswith("Library/Logs/noorapi/daemon.log")


@pytest.fixture
def recording_systemctl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """`systemctl` and `journalctl` on PATH that record their arguments and succeed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("systemctl", "journalctl"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def test_install_enables_and_starts_uninstall_undoes_it(config: Path, tmp_path: Path, recording_systemctl) -> None:
    env, log = recording_systemctl
    data = tmp_path / "data"
    installed = run("service", "install", "--platform", "systemd", "--config", str(config), "--data-dir", str(data), env=env)
    assert installed.returncode == 0, installed.stderr
    unit = tmp_path / "xdg-config" / "systemd" / "user" / "noor.service"
    assert "Type=notify" in unit.read_text()
    assert data.is_dir() and (data.stat().st_mode & 0o777) == 0o700  # made private before the unit names it
    assert log.read_text().splitlines() == ["systemctl --user daemon-reload", "systemctl --user enable --now noor.service"]
    logs = run("service", "logs", "-n", "5", "--platform", "systemd", env=env)
    assert logs.returncode == 0 and log.read_text().splitlines()[-1] == "journalctl --user-unit noor.service -n 5 --no-pager"
    log.unlink()
    removed = run("service", "uninstall", "--platform", "systemd", env=env)
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists() and data.is_dir()  # the data stays
    assert log.read_text().splitlines() == ["systemctl --user disable --now noor.service", "systemctl --user daemon-reload"]
    again = run("service", "uninstall", "--platform", "systemd", env=env)
    assert again.returncode == 2 and "no service installed" in again.stderr


def test_a_broken_config_is_refused_before_anything_is_written(tmp_path: Path, recording_systemctl) -> None:
    env, log = recording_systemctl
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = \n")
    result = run("service", "install", "--platform", "systemd", "--config", str(bad), env=env)
    assert result.returncode == 2 and f"{bad}:2:" in result.stderr
    assert not log.exists() and not (tmp_path / "xdg-config" / "systemd").exists()


async def test_the_daemon_notifies_ready_and_stopping_and_reloads_on_sighup(tmp_path: Path) -> None:
    """What systemd sees of a Type=notify unit, through a real NOTIFY_SOCKET datagram socket."""
    notify_socket = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_socket))
    receiver.setblocking(False)
    port = free_port()
    config = tmp_path / "noor.toml"
    config.write_text(f"[server]\nport = {port}\nshutdown_timeout = 1\n")
    env = {**os.environ, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN, "NOTIFY_SOCKET": str(notify_socket)}
    stderr = tmp_path / "daemon.stderr"
    loop = asyncio.get_running_loop()
    with open(stderr, "wb") as err:
        process = await asyncio.create_subprocess_exec(
            noor_executable(), "daemon", "--config", str(config), "--data-dir", str(tmp_path / "data"), env=env, stderr=err,
        )
    try:
        ready = await asyncio.wait_for(loop.sock_recv(receiver, 4096), 30)
        fields = ready.decode().splitlines()
        assert "READY=1" in fields and f"MAINPID={process.pid}" in fields
        assert f"STATUS=listening on http://127.0.0.1:{port}" in fields
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:  # ready means it answers
                assert r.status == 200
            config.write_text(f"[server]\nport = {port}\nshutdown_timeout = 1\n\n[retention]\nusage_days = 30\n")
            process.send_signal(signal.SIGHUP)  # ExecReload
            for _ in range(100):
                if b"config reloaded" in stderr.read_bytes():
                    break
                await asyncio.sleep(0.05)
            assert b"config reloaded" in stderr.read_bytes()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
        process.send_signal(signal.SIGTERM)  # KillSignal
        stopping = await asyncio.wait_for(loop.sock_recv(receiver, 4096), 15)
        assert stopping.decode().splitlines()[0] == "STOPPING=1"
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        receiver.close()
