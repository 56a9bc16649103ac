"""`noor daemon` as a real subprocess, for what only a separate process can show (kill -9, stderr)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ADMIN_TOKEN = "noor-admin-subprocess-token"


def noor_executable() -> str:
    beside = Path(sys.executable).with_name("noor")
    if beside.exists():
        return str(beside)
    found = shutil.which("noor")
    assert found, "the `noor` console script is not installed (pip install -e .)"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DaemonProcess:
    process: asyncio.subprocess.Process
    url: str
    data_dir: Path
    stderr_path: Path
    admin_token: str = ADMIN_TOKEN

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def database(self) -> Path:
        return self.data_dir / "ledger.sqlite3"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def create_key(self, email: str, **options) -> str:
        """An account (created if new) and a key through the admin API; returns the full key."""
        async with aiohttp.ClientSession(headers=self.admin_headers) as http:
            async with http.post(f"{self.url}/admin/v1/accounts", json={"email": email}) as r:
                assert r.status in (201, 409), await r.text()
            async with http.post(f"{self.url}/admin/v1/keys", json={"account": email, **options}) as r:
                assert r.status == 201, await r.text()
                return (await r.json())["key"]

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float = 10) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> int:
        """SIGTERM and wait: a graceful shutdown."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return await self.wait(15)
            except TimeoutError:
                self.kill9()
        return await self.wait()

    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()


async def start_daemon_process(
    workdir: Path, config_text: str, *, data_dir: Path | None = None, log_level: str = "info", name: str = "daemon"
) -> DaemonProcess:
    """Start `noor daemon` on a free loopback port and wait until /healthz answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.toml"
    config.write_text(config_text, encoding="utf-8")
    data = data_dir or workdir / "data"
    port = free_port()
    stderr_path = workdir / f"{name}-{port}.stderr"
    env = {**os.environ, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN, "PYTHONUNBUFFERED": "1"}
    with open(stderr_path, "wb") as err:
        process = await asyncio.create_subprocess_exec(
            noor_executable(),
            "daemon",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--config",
            str(config),
            "--log-level",
            log_level,
            stdout=err,
            stderr=err,
            env=env,
        )
    daemon = DaemonProcess(process, f"http://127.0.0.1:{port}", data, stderr_path)
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"noor daemon exited with {process.returncode}:\n{daemon.stderr().decode(errors='replace')}")
            try:
                async with http.get(f"{daemon.url}/healthz") as r:
                    if r.status == 200:
                        return daemon
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                daemon.kill9()
                raise AssertionError(f"noor daemon did not answer /healthz:\n{daemon.stderr().decode(errors='replace')}")
            await asyncio.sleep(0.05)


class DaemonProcesses:
    """Starts daemon subprocesses for one test and makes sure none outlives it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[DaemonProcess] = []

    async def start(self, config_text: str, **options) -> DaemonProcess:
        options.setdefault("name", f"daemon{len(self.started)}")
        daemon = await start_daemon_process(self.workdir, config_text, **options)
        self.started.append(daemon)
        return daemon

    async def close(self) -> None:
        for daemon in self.started:
            if daemon.process.returncode is None:
                daemon.kill9()
                await daemon.wait()
