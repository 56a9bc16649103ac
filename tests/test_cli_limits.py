"""`noor key suspend|unsuspend|limits`, `noor account suspend|unsuspend`, `noor quota`, `noor abuse`."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import LiveDaemon, call_gateway, live_daemon, noor, noor_json  # noqa: F401 - the fixture

pytestmark = pytest.mark.engine_independent


def test_suspend_unsuspend_and_key_limits(live_daemon: LiveDaemon) -> None:
    env = live_daemon.env
    noor("account", "create", "ops@example.com", env=env)
    issued = noor_json("key", "create", "--account", "ops@example.com", "--limit", "requests_per_minute=2", env=env)
    assert issued["limits"] == {"requests_per_minute": 2}
    key, key_id = issued["key"], issued["id"]
    assert [call_gateway(live_daemon.url, key) for _ in range(3)] == [200, 200, 429]

    limited = noor_json("key", "limits", key_id, "--limit", "requests_per_minute=100", env=env)
    assert limited["limits"] == {"requests_per_minute": 100}

    result = noor("key", "suspend", key_id, "--reason", "leaked", env=env)
    assert result.exit_code == 0 and "Suspended key" in result.output
    assert call_gateway(live_daemon.url, key) == 403
    assert noor("key", "unsuspend", key_id, env=env).exit_code == 0
    assert call_gateway(live_daemon.url, key) == 200

    assert noor_json("account", "suspend", "ops@example.com", env=env)["status"] == "suspended"
    assert call_gateway(live_daemon.url, key) == 403
    assert noor_json("account", "unsuspend", "ops@example.com", env=env)["status"] == "active"
    assert call_gateway(live_daemon.url, key) == 200

    report = noor_json("quota", "ops@example.com", env=env)
    rows = {r["limit"]: r for r in report["keys"][0]["limits"]}
    assert rows["requests_per_minute"]["value"] == 100 and rows["requests_per_minute"]["used"] >= 1
    table = noor("quota", "ops@example.com", env=env)
    assert table.exit_code == 0 and "requests_per_minute" in table.output

    flags = noor_json("abuse", env=env)
    assert flags["blocked_addresses"] == []
    audit = noor("privacy", "audit", "--json", env=env)
    actions = {entry["action"] for entry in json.loads(audit.stdout)}
    assert {"key.suspended", "key.unsuspended", "account.suspended", "account.unsuspended", "key.limits_changed"} <= actions


def test_bad_limit_is_a_usage_error(live_daemon: LiveDaemon) -> None:
    result = noor("key", "create", "--account", "x@example.com", "--limit", "requests_per_minute=zero", env=live_daemon.env)
    assert result.exit_code == 2 and "NAME=N" in result.output
