"""The systems under test, each started as a real process on loopback.

Every process is started with a parent-death signal (Linux), so none outlives the benchmark
even when the benchmark itself is killed; `stop()` in the callers' `finally` blocks is the
ordinary way out.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks import loadgen

BENCH_TOKEN = "noor-admin-benchmark"
ROOT = Path(__file__).resolve().parent.parent
BENCH_EMAIL = "bench@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process listening on a loopback port; its stderr goes to a temp file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        env: dict[str, str] | None = None,
        *,
        cwd: Path | None = None,
        own_group: bool = False,
    ) -> None:
        self.name = name
        self.port = port
        self.own_group = own_group
        self.log = tempfile.NamedTemporaryFile(prefix=f"noor-bench-{name.split()[0]}-", suffix=".log", delete=False)
        self.started_at = time.perf_counter()
        self.popen = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            cwd=cwd or ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=loadgen.die_with_parent if sys.platform == "linux" else None,
            start_new_session=own_group,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return Path(self.log.name).read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    def wait_until_listening(self, timeout: float = 30.0) -> float:
        """Seconds from the process's start until its port accepts connections."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}): {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return time.perf_counter() - self.started_at
            except OSError:
                time.sleep(0.005)
        raise RuntimeError(f"{self.name} did not listen within {timeout}s: {self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        return loadgen.cpu_seconds(self.pid)

    def rss_mb(self) -> float | None:
        return loadgen.rss_mb(self.pid)

    def peak_rss_mb(self) -> float | None:
        return loadgen.rss_mb(self.pid, "VmHWM")

    def stop(self) -> None:
        try:
            if self.popen.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.popen.wait(10)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.popen.wait()
            elif self.own_group:
                self._signal(signal.SIGKILL)  # the leader is gone; make sure its workers are too
        finally:
            self.log.close()
            try:
                os.unlink(self.log.name)
            except OSError:
                pass
            workdir = getattr(self, "workdir", None)
            if workdir is not None:  # the temp dir start_daemon made (config, and data unless given)
                shutil.rmtree(workdir, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        try:
            if self.own_group:
                os.killpg(self.popen.pid, sig)  # the group this process leads (started with its own session)
            else:
                self.popen.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass


def start_upstream() -> Process:
    port = free_port()
    return Process("upstream", [sys.executable, "-m", "benchmarks.upstream", "--port", str(port)], port)


def start_bare_proxy(upstream: Process) -> Process:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.bare_proxy", "--port", str(port), "--upstream", upstream.url]
    return Process("bare proxy", argv, port)


UNLIMITED_PLAN = ""
GENEROUS_PLAN = """requests_per_minute = 1000000000
tokens_per_minute = 1000000000000
concurrent_requests = 1000000
requests_per_day = 1000000000000
tokens_per_day = 1000000000000
tokens_per_month = 1000000000000"""
"""Every limit on, none ever reached: the cost of checking them, not of refusing."""

BENCH_PRICES = """
[prices.bench]
input_per_million = 1
output_per_million = 2
"""
GENEROUS_BUDGETS = """budget_per_day = 100000000
budget_per_month = 100000000"""
"""Budgets never reached: the cost of checking them (a worst case per call, held and released), not of refusing."""


def daemon_config(upstream: Process | None, plan: str, extra: str = "") -> str:
    """An OpenAI-style model `bench` and an Anthropic-style model `bench-claude`, both on the stand-in."""
    providers = ""
    if upstream is not None:
        providers = f"""
[[providers]]
name = "bench"
kind = "openai"
base_url = "{upstream.url}/v1"

[[providers]]
name = "bench-anthropic"
kind = "anthropic"
base_url = "{upstream.url}"

[[models]]
name = "bench"
routes = [{{ provider = "bench", model = "bench" }}]

[[models]]
name = "bench-claude"
routes = [{{ provider = "bench-anthropic", model = "bench-claude" }}]
"""
    return f"""{providers}
[plans.free]
{plan}
{extra}
"""


def start_daemon(
    name: str,
    config_text: str,
    *,
    data_dir: Path | None = None,
    parent: Path | None = None,
    module: str = "noor_daemon",
    code: Path | None = None,
) -> Process:
    """A `noor daemon` process; a fresh data dir under `parent` (a temp dir by default) unless `data_dir`.
    `code`: another checkout to run the daemon from (its packages first on the path)."""
    workdir = Path(tempfile.mkdtemp(prefix="noor-bench-", dir=parent))
    (workdir / "config.toml").write_text(config_text)
    data = data_dir or workdir / "data"
    port = free_port()
    argv = [
        sys.executable, "-m", module, "daemon",
        "--port", str(port), "--data-dir", str(data), "--config", str(workdir / "config.toml"),
        "--log-level", "warning",
    ]
    env = {"NOOR_ADMIN_TOKEN": BENCH_TOKEN}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    process = Process(name, argv, port, env=env, cwd=code)
    process.workdir = workdir  # type: ignore[attr-defined]
    return process


async def provision_key(daemon: Process, email: str = BENCH_EMAIL) -> str:
    """An account and a key, made through the admin API like an operator would."""
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{daemon.url}/admin/v1/accounts", json={"email": email}) as response:
            response.raise_for_status()
        async with session.post(f"{daemon.url}/admin/v1/keys", json={"account": email}) as response:
            response.raise_for_status()
            return (await response.json())["key"]


async def provision_data_dir(data_dir: Path, email: str = BENCH_EMAIL) -> str:
    """A data dir holding one account and one key, written in-process (the daemon is not running)."""
    from noor_daemon import paths
    from noor_daemon.clock import Clock
    from noor_daemon.domain.accounts import KeyRing
    from noor_daemon.ledger.accounts import AccountStore
    from noor_daemon.ledger.audit import AuditLog
    from noor_daemon.ledger.sqlite import SqliteLedger

    paths.ensure_private_dir(data_dir)
    ledger = SqliteLedger(paths.database_file(data_dir))
    await ledger.open()
    try:
        clock = Clock()
        store = AccountStore(ledger, KeyRing(), clock, AuditLog(ledger, clock))
        account = await store.create_account(email, "free")
        return (await store.create_key(account.id, name="bench")).secret
    finally:
        await ledger.close()


def first_ok(port: int, path: str, body: bytes, headers: dict[str, str], deadline: float) -> bool:
    """Poll `POST path` until it answers 200 (True) or `deadline` (perf_counter) passes (False)."""
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.005)
    return False


def http_get(port: int, path: str, headers: dict[str, str], conn: http.client.HTTPConnection | None = None):
    """(status, body, seconds, connection) of one GET on a kept-alive connection."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, body, time.perf_counter() - started, conn
