"""`noor privacy …` and `noor account email` against a real daemon (in a thread: CliRunner blocks)."""

from __future__ import annotations

import asyncio
import json
import time
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner, Result
from conftest import ADMIN_TOKEN, SIMULATOR_CONFIG

from noor_daemon import config as config_module
from noor_daemon.app import create_app
from noor_daemon.cli import cli
from noor_daemon.server import GatewayRunner
from noor_daemon.settings import DaemonSettings

EMAIL = "cli.person@example.org"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A daemon on the simulator in its own thread and loop; yields the CLI's environment."""
    loaded = config_module.LoadedConfig(config_module.parse(SIMULATOR_CONFIG, "test.toml"), None)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = GatewayRunner(create_app(DaemonSettings(loaded, tmp_path / "data", ADMIN_TOKEN, "test")), access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(15)
    yield {"NOOR_URL": f"http://127.0.0.1:{state['port']}", "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    loop.call_soon_threadsafe(loop.stop)
    thread.join(15)


def noor(env: dict[str, str], *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, (args, result.output, result.stderr)
    return result


def day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).strftime("%Y-%m-%d")


def test_correction_requests_and_their_due_dates(served):
    noor(served, "account", "create", EMAIL)
    changed = json.loads(noor(served, "account", "email", EMAIL, "corrected@example.org", "--json").stdout)
    assert changed["email"] == "corrected@example.org"
    noor(served, "account", "email", EMAIL, "x@example.org", code=1)  # the old address is gone

    recorded = noor(served, "privacy", "record", "access", "corrected@example.org", "--note", "by letter")
    assert "due " + day(30) in recorded.stdout
    listing = json.loads(noor(served, "privacy", "requests", "--json").stdout)
    kinds = {r["kind"]: r for r in listing["data"]}
    assert kinds["correction"]["status"] == "completed" and kinds["access"]["status"] == "open"
    assert listing["open"] == 1 and listing["overdue"] == 0
    assert json.loads(noor(served, "privacy", "requests", "--overdue", "--json").stdout)["data"] == []
    table = noor(served, "privacy", "requests", "--status", "open")
    assert "access" in table.stdout and "1 open, 0 overdue" in table.stderr

    done = noor(served, "privacy", "complete", str(kinds["access"]["id"]), "--note", "sent")
    assert "completed" in done.stdout
    noor(served, "privacy", "complete", "4242", code=1)
    noor(served, "privacy", "record", "erasure", EMAIL, code=2)


def test_retention_dry_run_run_and_status(served):
    dry = json.loads(noor(served, "privacy", "retention", "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True and dry["usage_days"] == 90 and dry["usage_events"] == 0
    assert "Would remove 0 usage events" in noor(served, "privacy", "retention", "--dry-run").stdout
    assert "Removed 0 usage events" in noor(served, "privacy", "retention").stdout
    status = noor(served, "privacy", "retention", "--status")
    assert "kept 90 days" in status.stdout and "by admin" in status.stdout


def test_audit_export_as_json_and_text(served):
    noor(served, "account", "create", EMAIL)
    noor(served, "account", "create", "someone@example.org")
    noor(served, "key", "create", "--account", EMAIL)
    entries = json.loads(noor(served, "privacy", "audit", "--account", EMAIL, "--json").stdout)
    assert [e["action"] for e in entries] == ["key.created", "account.created"]
    assert "@" not in json.dumps(entries)
    deadline = time.monotonic() + 15
    while True:  # the retention job's start-up run is the daemon's own, and may come after the calls above
        everything = json.loads(noor(served, "privacy", "audit", "--json").stdout)
        if any(e["action"] == "retention.ran" for e in everything) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(e["action"] for e in everything) == ["account.created", "account.created", "key.created", "retention.ran"]
    assert json.loads(noor(served, "privacy", "audit", "--action", "nothing.*", "--json").stdout) == []
    text = noor(served, "privacy", "audit", "--action", "account.*")
    assert text.stdout.count("account.created") == 2 and "2 entries." in text.stderr


def test_policy_publish_and_show(served):
    noor(served, "account", "create", EMAIL)
    refused = noor(served, "privacy", "policy", "publish", "--effective", day(7), "--summary", "Longer retention.", code=1)
    assert "at least 14 days" in refused.stderr
    published = noor(served, "privacy", "policy", "publish", "--effective", day(20), "--summary", "Longer retention.")
    assert "1 notice mails queued" in published.stdout
    minor = json.loads(
        noor(served, "privacy", "policy", "publish", "--effective", day(1), "--summary", "Typo fixed.", "--minor",
             "--no-notify", "--json").stdout
    )
    assert minor["material"] is False and minor["notices"] == 0
    noor(served, "privacy", "policy", "publish", "--effective", day(30), "--summary", "x", "--no-notify", code=2)
    shown = json.loads(noor(served, "privacy", "policy", "show", "--json").stdout)
    assert shown["current"] is None and [v["version"] for v in shown["upcoming"]] == [2, 1]
    assert "Longer retention." in noor(served, "privacy", "policy", "show").stdout

    mail = json.loads(noor(served, "privacy", "mail", "--json").stdout)
    assert mail["delivery"] == "maildir"
    assert {m["kind"] for m in mail["data"]} == {"account_created", "policy_notice"}
