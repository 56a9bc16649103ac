"""The systems under test, each started as a real process on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BENCH_TOKEN = "noor-admin-benchmark"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = port
        self.popen = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_listening(self, timeout: float = 30.0) -> float:
        """Seconds from now until the port accepts connections."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.popen.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"{self.name} did not listen within {timeout}s")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process, from /proc (Linux)."""
        try:
            fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_upstream() -> Process:
    port = free_port()
    process = Process("upstream", [sys.executable, "-m", "benchmarks.upstream", "--port", str(port)], port)
    process.wait_until_listening()
    return process


def daemon_config(upstream: Process, plan: str) -> str:
    return f"""
[[providers]]
name = "bench"
kind = "openai"
base_url = "{upstream.url}/v1"

[[models]]
name = "bench"
routes = [{{ provider = "bench", model = "bench" }}]

[plans.free]
{plan}
"""


def start_daemon(name: str, config_text: str) -> tuple[Process, float]:
    """A `noor daemon` process on a fresh data dir; returns it with its cold-start time in seconds."""
    workdir = Path(tempfile.mkdtemp(prefix="noor-bench-"))
    (workdir / "config.toml").write_text(config_text)
    port = free_port()
    argv = [
        sys.executable, "-m", "noor_daemon", "daemon",
        "--port", str(port), "--data-dir", str(workdir / "data"), "--config", str(workdir / "config.toml"),
        "--log-level", "warning",
    ]
    process = Process(name, argv, port, env={"NOOR_ADMIN_TOKEN": BENCH_TOKEN})
    return process, process.wait_until_listening()


async def provision_key(daemon: Process) -> str:
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{daemon.url}/admin/v1/accounts", json={"email": "bench@example.com"}) as response:
            response.raise_for_status()
        async with session.post(f"{daemon.url}/admin/v1/keys", json={"account": "bench@example.com"}) as response:
            response.raise_for_status()
            return (await response.json())["key"]
