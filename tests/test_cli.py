"""The `noor` CLI against a real daemon.

CliRunner blocks, so the daemon here runs in a background thread with its own event loop
(built by the same `create_app` as `noor daemon`); the CLI reaches it over HTTP like a user's.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner, Result
from conftest import ADMIN_TOKEN, SIMULATOR_CONFIG

from noor_daemon import config as config_module
from noor_daemon.app import create_app
from noor_daemon.cli import cli
from noor_daemon.cli.common import Duration
from noor_daemon.server import GatewayRunner
from noor_daemon.settings import DaemonSettings

pytestmark = pytest.mark.engine_independent

NOOR = Path(sys.executable).with_name("noor")


@dataclass
class LiveDaemon:
    url: str
    data_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {"NOOR_URL": self.url, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture
def live_daemon(tmp_path: Path) -> Iterator[LiveDaemon]:
    """A daemon on the simulator in a thread of its own, stopped after the test."""
    loaded = config_module.LoadedConfig(config_module.parse(SIMULATOR_CONFIG, "test.toml"), None)
    data = tmp_path / "daemon-data"
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = GatewayRunner(create_app(DaemonSettings(loaded, data, ADMIN_TOKEN, "test")), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            state["port"] = runner.addresses[0][1]
        except BaseException as exc:  # surfaced by the fixture below
            state["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="noor-test-daemon", daemon=True)
    thread.start()
    assert ready.wait(15), "the daemon did not start"
    if "error" in state:
        raise state["error"]  # type: ignore[misc]
    yield LiveDaemon(f"http://127.0.0.1:{state['port']}", data)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(15)


def noor(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def noor_json(*args: str, env: dict[str, str]) -> object:
    result = noor(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def call_gateway(url: str, key: str, model: str = "sim-gpt") -> int:
    """One chat completion through the gateway; returns the HTTP status."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode()
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- arguments and help, no daemon needed ---------------------------------------------------

COMMANDS = [
    [], ["daemon"], ["demo"], ["doctor"],
    ["account"], ["account", "create"], ["account", "list"], ["account", "delete"],
    ["key"], ["key", "create"], ["key", "list"], ["key", "revoke"], ["key", "rotate"],
    ["privacy"], ["privacy", "export"], ["usage"], ["usage", "summary"],
    ["init"], ["completion"], ["config", "check"], ["service"], ["service", "install"], ["service", "uninstall"],
    ["service", "status"], ["service", "logs"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "noor")
def test_help_everywhere(command: list[str]) -> None:
    result = noor(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["key", "create"],  # --account is required
        ["key", "create", "--account", "a@example.com", "--expires", "soon"],
        ["key", "create", "--account", "a@example.com", "--expires", "0d"],
        ["usage", "summary", "--hours", "0"],
        ["privacy", "export", "a@example.com"],  # --output is required
        ["privacy", "export", "a@example.com", "--output", "x", "--format", "xml"],
        ["account", "create"],
        ["account", "list", "--url", "localhost:8787"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = noor(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("12h", 43200), ("30d", 2_592_000), ("2w", 1_209_600), ("45", 45), ("45s", 45)]
)
def test_durations(text: str, seconds: int) -> None:
    assert Duration().convert(text, None, None) == seconds


# -- the daemon is not there -----------------------------------------------------------------


@pytest.mark.parametrize("args", [["account", "list"], ["key", "list", "--json"], ["usage", "summary"]])
def test_unreachable_daemon_exits_3_with_a_hint(args: list[str]) -> None:
    result = noor(*args, env={"NOOR_URL": f"http://127.0.0.1:{free_port()}", "NOOR_ADMIN_TOKEN": "x"})
    assert result.exit_code == 3
    assert "noor daemon" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_unreachable_daemon_through_the_console_script(tmp_path: Path) -> None:
    env = {**os.environ, "NOOR_URL": f"http://127.0.0.1:{free_port()}", "NOOR_DATA_DIR": str(tmp_path)}
    done = subprocess.run([str(NOOR), "account", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "noor daemon" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_export_to_unreachable_daemon_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    result = noor("privacy", "export", "a@example.com", "--output", str(out),
                  env={"NOOR_URL": f"http://127.0.0.1:{free_port()}", "NOOR_ADMIN_TOKEN": "x"})
    assert result.exit_code == 3
    assert list(tmp_path.iterdir()) == []


# -- accounts ------------------------------------------------------------------------------


def test_account_create_list_delete(live_daemon: LiveDaemon) -> None:
    env = live_daemon.env
    created = noor_json("account", "create", "ana@example.com", env=env)
    assert created["email"] == "ana@example.com" and created["id"].startswith("acct_")
    assert created["plan"] == "free"

    listed = noor("account", "list", env=env)
    assert listed.exit_code == 0 and "ana@example.com" in listed.stdout
    assert [a["email"] for a in noor_json("account", "list", env=env)] == ["ana@example.com"]

    refused = noor("account", "delete", "ana@example.com", env=env)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert [a["email"] for a in noor_json("account", "list", env=env)] == ["ana@example.com"]

    deleted = noor("account", "delete", "ana@example.com", "--yes", env=env)
    assert deleted.exit_code == 0, deleted.output
    assert noor_json("account", "list", env=env) == []


def test_api_errors_exit_1_with_one_line(live_daemon: LiveDaemon) -> None:
    env = live_daemon.env
    assert noor("account", "create", "bo@example.com", env=env).exit_code == 0
    duplicate = noor("account", "create", "bo@example.com", env=env)
    assert duplicate.exit_code == 1
    assert "409" in duplicate.stderr and len(duplicate.stderr.strip().splitlines()) == 1
    missing = noor("account", "delete", "nobody@example.com", "--yes", env=env)
    assert missing.exit_code == 1 and "404" in missing.stderr
    bad_plan = noor("account", "create", "cy@example.com", "--plan", "platinum", env=env)
    assert bad_plan.exit_code == 1 and "plan" in bad_plan.stderr


def test_wrong_or_missing_admin_token_exit_1(live_daemon: LiveDaemon, tmp_path: Path) -> None:
    wrong = noor("account", "list", env={"NOOR_URL": live_daemon.url, "NOOR_ADMIN_TOKEN": "wrong"})
    assert wrong.exit_code == 1 and "401" in wrong.stderr
    empty_dir = tmp_path / "empty"
    missing = noor("account", "list", "--data-dir", str(empty_dir), env={"NOOR_URL": live_daemon.url})
    assert missing.exit_code == 1
    assert "No admin token found" in missing.stderr


def test_admin_token_from_the_data_dir_file(live_daemon: LiveDaemon, tmp_path: Path) -> None:
    data = tmp_path / "tokens"
    data.mkdir()
    (data / "admin_token").write_text(ADMIN_TOKEN + "\n")
    result = noor("account", "list", "--data-dir", str(data), env={"NOOR_URL": live_daemon.url})
    assert result.exit_code == 0, result.output


# -- keys ----------------------------------------------------------------------------------


def test_key_create_json_and_list_masks(live_daemon: LiveDaemon) -> None:
    env = live_daemon.env
    noor("account", "create", "dev@example.com", env=env)
    issued = noor_json("key", "create", "--account", "dev@example.com", "--name", "laptop",
                       "--models", "sim-gpt, sim-claude", "--expires", "30d", env=env)
    secret = issued["key"]
    assert secret.startswith("sk-noor-")
    assert issued["name"] == "laptop" and issued["models"] == ["sim-claude", "sim-gpt"]
    assert issued["expires_at"] is not None and issued["state"] == "active"
    assert call_gateway(live_daemon.url, secret) == 200

    table = noor("key", "list", env=env)
    assert table.exit_code == 0
    assert issued["id"] in table.stdout and issued["prefix"] in table.stdout and "dev@example.com" in table.stdout
    listed = noor("key", "list", "--account", "dev@example.com", "--json", env=env)
    for output in (table.output, listed.output):
        assert secret not in output
    keys = json.loads(listed.stdout)
    assert [k["id"] for k in keys] == [issued["id"]]
    assert all("key" not in k and not any("hash" in field for field in k) for k in keys)


def test_key_create_prints_the_key_once_with_a_warning(live_daemon: LiveDaemon) -> None:
    env = live_daemon.env
    noor("account", "create", "dev@example.com", env=env)
    result = noor("key", "create", "--account", "dev@example.com", env=env)
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sk-noor-")
    assert result.output.count(lines[0]) == 1
    assert "will not be shown again" in result.stderr
    assert call_gateway(live_daemon.url, lines[0]) == 200


def test_revoked_key_gets_401(live_daemon: LiveDaemon) -> None:
    env = live_daemon.env
    noor("account", "create", "dev@example.com", env=env)
    issued = noor_json("key", "create", "--account", "dev@example.com", env=env)
    assert call_gateway(live_daemon.url, issued["key"]) == 200
    revoked = noor("key", "revoke", issued["id"], env=env)
    assert revoked.exit_code == 0 and issued["id"] in revoked.stdout
    assert call_gateway(live_daemon.url, issued["key"]) == 401
    assert [k["state"] for k in noor_json("key", "list", env=env)] == ["revoked"]
    assert noor("key", "revoke", "key_nosuchkey", env=env).exit_code == 1


def test_rotate_prints_the_new_key_once(live_daemon: LiveDaemon) -> None:
    env = live_daemon.env
    noor("account", "create", "dev@example.com", env=env)
    old = noor_json("key", "create", "--account", "dev@example.com", env=env)
    rotated = noor("key", "rotate", old["id"], env=env)
    assert rotated.exit_code == 0, rotated.output
    new_key = rotated.stdout.strip()
    assert new_key.startswith("sk-noor-") and new_key != old["key"]
    assert "will not be shown again" in rotated.stderr
    assert call_gateway(live_daemon.url, old["key"]) == 401
    assert call_gateway(live_daemon.url, new_key) == 200
    again = noor("key", "rotate", old["id"], env=env)
    assert again.exit_code == 1 and "409" in again.stderr


# -- export and usage --------------------------------------------------------------------------


def _account_with_usage(daemon: LiveDaemon, email: str = "dev@example.com", calls: int = 3) -> dict:
    noor("account", "create", email, env=daemon.env)
    issued = noor_json("key", "create", "--account", email, env=daemon.env)
    for _ in range(calls):
        assert call_gateway(daemon.url, issued["key"]) == 200
    return issued


def test_export_json(live_daemon: LiveDaemon, tmp_path: Path) -> None:
    issued = _account_with_usage(live_daemon)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "export.json"
    result = noor("privacy", "export", "dev@example.com", "--output", str(out), env=live_daemon.env)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert issued["key"] not in text and "hash" not in text
    data = json.loads(text)
    assert data["account"]["email"] == "dev@example.com"
    assert [k["id"] for k in data["api_keys"]] == [issued["id"]]
    assert len(data["usage_events"]) == 3
    for event in data["usage_events"]:
        assert event["model"] == "sim-gpt" and event["status"] == 200
        assert event["prompt_tokens"] > 0 and event["completion_tokens"] > 0 and event["latency_ms"] >= 0
        assert event["ts"].endswith("Z")
        assert datetime.fromisoformat(event["ts"]).utcoffset() == timedelta(0)
    assert [p.name for p in out_dir.iterdir()] == ["export.json"]  # no partial file left behind

    exists = noor("privacy", "export", "dev@example.com", "--output", str(out), env=live_daemon.env)
    assert exists.exit_code == 2 and "--force" in exists.stderr
    out.chmod(0o644)
    forced = noor("privacy", "export", "dev@example.com", "--output", str(out), "--force", "--json", env=live_daemon.env)
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["events"] == 3
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_export_csv(live_daemon: LiveDaemon, tmp_path: Path) -> None:
    _account_with_usage(live_daemon, calls=2)
    out = tmp_path / "export.csv"
    result = noor("privacy", "export", "dev@example.com", "-o", str(out), "--format", "csv", env=live_daemon.env)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 2
    assert {"ts", "model", "status", "prompt_tokens", "completion_tokens", "latency_ms"} <= set(rows[0])
    assert rows[0]["model"] == "sim-gpt" and rows[0]["status"] == "200"


def test_export_of_unknown_account_exits_1_and_writes_nothing(live_daemon: LiveDaemon, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "export.json"
    result = noor("privacy", "export", "nobody@example.com", "--output", str(out), env=live_daemon.env)
    assert result.exit_code == 1 and "404" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_usage_summary(live_daemon: LiveDaemon) -> None:
    _account_with_usage(live_daemon, calls=2)
    summary = noor_json("usage", "summary", "--hours", "2", "--account", "dev@example.com", env=live_daemon.env)
    assert summary["hours"] == 2
    assert summary["totals"]["requests"] == 2
    assert [m["model"] for m in summary["models"]] == ["sim-gpt"]
    table = noor("usage", "summary", env=live_daemon.env)
    assert table.exit_code == 0 and "sim-gpt" in table.stdout and "TOTAL" in table.stdout


# -- doctor and demo ---------------------------------------------------------------------------


def test_doctor_json_with_a_running_daemon(live_daemon: LiveDaemon, tmp_path: Path) -> None:
    report = noor_json("doctor", "--data-dir", str(tmp_path / "data"), env=live_daemon.env)
    assert report["version"]
    assert report["config"]["exists"] is False and report["config"]["valid"] is True
    assert report["data_dir"]["path"] == str(tmp_path / "data")
    assert report["ledger"]["path"].startswith(str(tmp_path / "data"))
    assert report["keyring"] == {"backend": "keyring.backends.fail.Keyring", "usable": False}
    assert report["admin_token"] == {"found": True, "source": "env:NOOR_ADMIN_TOKEN"}
    assert report["daemon"]["reachable"] is True and report["daemon"]["admin_token_accepted"] is True
    assert ADMIN_TOKEN not in json.dumps(report)


def test_doctor_without_a_daemon_and_with_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[server]\nport = 'eighty'\n")
    env = {"NOOR_URL": f"http://127.0.0.1:{free_port()}", "NOOR_CONFIG": str(config)}
    result = noor("doctor", "--json", env=env)
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["daemon"]["reachable"] is False
    assert report["config"]["valid"] is False and "port" in report["config"]["error"]
    assert report["admin_token"]["found"] is False
    text = noor("doctor", env=env)
    assert "INVALID" in text.stdout and "noor daemon" in text.stdout


def test_demo_runs_offline_and_prints_a_summary() -> None:
    result = noor("demo", "--seconds", "2", "--no-tui")
    assert result.exit_code == 0, result.output
    for expected in ("sim-gpt", "sim-claude", "sim-embed", "401", "429", "413", "Usage in the last", "TOTAL"):
        assert expected in result.stdout


def test_an_unexpected_failure_is_one_line_not_a_traceback(live_daemon: LiveDaemon, monkeypatch) -> None:
    from noor_daemon.client import AdminClient

    async def broken(self) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(AdminClient, "list_accounts", broken)
    result = CliRunner().invoke(cli, ["account", "list"], env=live_daemon.env)
    assert result.exit_code == 1
    assert "NOOR_DEBUG" in result.stderr and "Traceback" not in result.output
