"""Shared fixtures: a real daemon on a loopback port, built by the same factory `noor daemon` uses."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pg_helpers
import pytest
from aiohttp import web
from standin_upstream import (
    ANTHROPIC_KEY_ENV,
    OPENAI_KEY_ENV,
    UPSTREAM_ANTHROPIC_SECRET,
    UPSTREAM_OPENAI_SECRET,
    StandIn,
)

from noor_daemon import config as config_module
from noor_daemon.app import create_app, server_options
from noor_daemon.clock import Clock, ManualClock
from noor_daemon.server import GatewayRunner
from noor_daemon.settings import DaemonSettings
from noor_daemon.state import ACCOUNTS, LEDGER

ADMIN_TOKEN = "noor-admin-test-token"

STORAGE = os.environ.get("NOOR_TEST_STORAGE", "sqlite")
"""`postgresql` runs the daemons of the whole suite on PostgreSQL (`.ci/run` does both)."""

SIMULATOR_CONFIG = """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator", model = "sim-gpt" }]

[[models]]
name = "sim-claude"
routes = [{ provider = "simulator", model = "sim-claude" }]

[[models]]
name = "sim-embed"
routes = [{ provider = "simulator", model = "sim-embed" }]
"""


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's real config, data dir or keyring."""
    for var in ("NOOR_CONFIG", "NOOR_DATA_DIR", "NOOR_ADMIN_TOKEN", "NOOR_URL", "NOOR_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


@dataclass
class Daemon:
    app: web.Application
    url: str
    data_dir: Path
    clock: Clock
    admin_token: str = ADMIN_TOKEN
    runner: web.AppRunner | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """What an OpenAI SDK takes as base_url."""
        return f"{self.url}/v1"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def create_key(self, email: str = "dev@example.com", plan: str | None = None, **key_options) -> str:
        """A fresh API key (the full secret) on the account `email`, created if need be."""
        store = self.app[ACCOUNTS]
        try:
            account = await store.get_account(email)
        except LookupError:
            account = await store.create_account(email, plan or "free")
        issued = await store.create_key(account.id, **key_options)
        return issued.secret

    async def usage_rows(self) -> list[dict]:
        rows = await self.app[LEDGER].fetchall("SELECT * FROM usage_events ORDER BY id")
        return [dict(r) for r in rows]


StartDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start daemons on loopback: `await start_daemon(config_text, clock=..., data_dir=...)`."""
    runners: list[web.AppRunner] = []
    databases: dict[Path, str] = {}

    async def _serve(loaded, data: Path, clock: Clock | None) -> Daemon:
        the_clock = clock or Clock()
        app = create_app(DaemonSettings(loaded, data, ADMIN_TOKEN, "test", the_clock))
        runner = GatewayRunner(app, access_log=None, **server_options(loaded.config))
        await runner.setup()
        _, port = await runner.listen("127.0.0.1", 0)  # as `noor daemon` listens: its backlog, not aiohttp's
        runners.append(runner)
        return Daemon(app, f"http://127.0.0.1:{port}", data, the_clock, runner=runner)

    async with AsyncExitStack() as stack:

        async def start(
            config_text: str = SIMULATOR_CONFIG, *, clock: Clock | None = None, data_dir: Path | None = None
        ) -> Daemon:
            data = data_dir or tmp_path / f"data{len(runners)}"
            loaded = config_module.LoadedConfig(config_module.parse(config_text, "test.toml"), None)
            if STORAGE == "postgresql" and loaded.config.storage.url is None:
                if data not in databases:  # a restart on the same data dir finds the same database
                    databases[data] = await stack.enter_async_context(pg_helpers.fresh_database())
                storage = loaded.config.storage.model_copy(update={"url": databases[data]})
                loaded = config_module.LoadedConfig(loaded.config.model_copy(update={"storage": storage}), None)
            return await _serve(loaded, data, clock)

        yield start
        for runner in reversed(runners):
            await runner.cleanup()


@pytest.fixture
async def daemon(start_daemon: StartDaemon) -> Daemon:
    return await start_daemon()


@pytest.fixture
async def standin(start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StandIn]:
    """A stand-in upstream (OpenAI and Anthropic shapes) on loopback; see tests/standin_upstream.py.

    Its provider secrets are in the environment for `standin_config(...)`'s `env:` references.
    It depends on `start_daemon` only so that it stops first: a daemon call waiting on a
    hung stand-in is released before the daemon shuts down.
    """
    monkeypatch.setenv(OPENAI_KEY_ENV, UPSTREAM_OPENAI_SECRET)
    monkeypatch.setenv(ANTHROPIC_KEY_ENV, UPSTREAM_ANTHROPIC_SECRET)
    server = await StandIn().start()
    yield server
    await server.stop()


@pytest.fixture
def manual_clock() -> ManualClock:
    import time

    return ManualClock(start=time.time())


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("NO_COLOR", "1")
    config.addinivalue_line("markers", "sqlite_file: inspects the SQLite file itself (skipped when the suite runs on PostgreSQL)")
    config.addinivalue_line(
        "markers",
        "engine_independent: its subject is above the storage engine (the wire, the CLI, the dashboard, translation, "
        "the upstream client, security of the HTTP layer) or it never opens the ledger on NOOR_TEST_STORAGE's engine: "
        "run once, in the SQLite run; the PostgreSQL run keeps the ledger, limits, money, billing, privacy, "
        "durability and scale-out tests",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if STORAGE == "postgresql":
        skip = pytest.mark.skip(reason="inspects the SQLite file; this run is on PostgreSQL")
        same = pytest.mark.skip(reason="the same on either engine: the SQLite run covers it")
        for item in items:
            if item.get_closest_marker("sqlite_file"):
                item.add_marker(skip)
            elif item.get_closest_marker("engine_independent"):
                item.add_marker(same)
