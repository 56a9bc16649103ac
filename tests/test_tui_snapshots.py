"""Snapshots of every dashboard screen at 80x24 and 160x48, against a daemon serving fixed data.

Update after a deliberate change of the look with `pytest tests/test_tui_snapshots.py --snapshot-update`
and review the SVGs in tests/__snapshots__/ (or the report pytest-textual-snapshot writes on failure).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input
from tui_helpers import wait_until
from tui_snapshot_app import TOKEN, SnapshotDaemon, snapshot_app

from noor_tui.widgets.detail import DetailScreen
from noor_tui.widgets.feed import LiveFeed
from noor_tui.widgets.modals import ShowOnceKeyModal, TypedConfirmModal
from noor_tui.widgets.records import RecordTable

pytestmark = pytest.mark.engine_independent

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
ADMIN_SCREENS = ["overview", "usage", "quotas", "keys", "accounts", "privacy", "billing", "routes"]
ME_SCREENS = ["account", "usage", "data"]
SHOWN_ONCE = "sk-noor-" + "S" * 43 + "NAPSHT"


def _get(url: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def snapshot_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotDaemon]:
    daemon = SnapshotDaemon(tmp_path_factory.mktemp("snapshot-daemon")).start()
    deadline = time.monotonic() + 20
    while True:  # the last hour loaded into memory, and the retention job's first run recorded
        overview = _get(f"{daemon.url}/admin/v1/overview")
        retention = _get(f"{daemon.url}/admin/v1/privacy/retention")
        if not overview["loading"] and retention.get("last_run") and retention.get("next_run_at"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the snapshot daemon did not settle")
        time.sleep(0.05)
    yield daemon
    daemon.stop()


@pytest.fixture(autouse=True)
def _colour_and_no_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots in colour (the test session sets NO_COLOR for the CLI), and a cursor that holds still."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(Input, "cursor_blink", False)


async def _ready(pilot, mode: str) -> None:
    app = pilot.app
    await app.switch_mode(mode)
    screen = app.screen
    await wait_until(pilot, lambda: screen.loaded and app.connection.ok, timeout=15, what=f"{mode} to load")
    if hasattr(app, "accounts"):  # the admin dashboard labels accounts by email once its directory is in
        await wait_until(pilot, lambda: app.accounts, timeout=15, what="the directory of accounts")
    if mode == "overview":
        feed = screen.query_one(LiveFeed)
        await wait_until(pilot, lambda: feed.table.row_count == 100, timeout=15, what="the feed's backlog")
        await wait_until(pilot, lambda: screen.upstreams is not None, timeout=15, what="upstream health")
    await pilot.pause(0.2)


def _before(mode: str, then=None):
    async def run_before(pilot) -> None:
        await _ready(pilot, mode)
        if then is not None:
            await then(pilot)
            await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ADMIN_SCREENS)
def test_admin_screen(snap_compare, snapshot_daemon, tmp_path: Path, mode: str, size: str) -> None:
    app = snapshot_app(snapshot_daemon.url, tmp_path)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_before(mode))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ME_SCREENS)
def test_self_service_screen(snap_compare, snapshot_daemon, tmp_path: Path, mode: str, size: str) -> None:
    app = snapshot_app(snapshot_daemon.url, tmp_path, me=True)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_before(mode))


async def _help(pilot) -> None:
    await pilot.press("question_mark")


async def _show_once(pilot) -> None:
    pilot.app.push_screen(ShowOnceKeyModal("New API key", SHOWN_ONCE, "Key sk-noor-SSSSSS… for ada@example.com (laptop)"))


async def _typed_delete(pilot) -> None:
    pilot.app.push_screen(
        TypedConfirmModal(
            "Delete account",
            "Delete grace@example.com for good: the account, all its keys (refused at once), its usage rows and "
            "per-account aggregates. The audit log keeps only a pseudonym. This cannot be undone.",
            "grace@example.com",
            confirm="Delete account",
        )
    )
    await pilot.pause(0.1)
    await pilot.press(*"grace@exam")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "mode, action",
    [("overview", _help), ("keys", _show_once), ("accounts", _typed_delete)],
    ids=["help", "show_once_key", "typed_delete"],
)
def test_dialog(snap_compare, snapshot_daemon, tmp_path: Path, mode: str, action, size: str) -> None:
    app = snapshot_app(snapshot_daemon.url, tmp_path)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_before(mode, action))



async def _on_row(pilot, table_id: str, key: str | None = None, *, where=None) -> RecordTable:
    """Focus the table and put its cursor on a record (by key, or the first for which `where` holds)."""
    table = pilot.app.screen.query_one(f"#{table_id}", RecordTable)
    await wait_until(pilot, lambda: table.records, what=f"rows in #{table_id}")
    if key is None and where is not None:
        key = next(r.key for r in table.records if where(r.item))
    if key is not None:
        assert table.select(key)
    table.table.focus()
    await pilot.pause()
    return table


def _press(table_id: str, *keys: str, key: str | None = None, where=None, wait=None):
    async def action(pilot) -> None:
        await _on_row(pilot, table_id, key, where=where)
        await pilot.press(*keys)
        await pilot.pause(0.3)
        if wait is not None:
            await wait_until(pilot, lambda: wait(pilot.app.screen), timeout=10, what="the dialog")

    return action


def _detail(table_id: str, key: str | None = None, *, where=None, tab_presses: int = 0):
    async def action(pilot) -> None:
        for _ in range(tab_presses):
            await pilot.press("t")
            await pilot.pause(0.2)
        await _on_row(pilot, table_id, key, where=where)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen) and pilot.app.screen.loaded,
                         timeout=10, what="the detail panel")

    return action


async def _filter(pilot) -> None:
    await _on_row(pilot, "keys")
    await pilot.press("slash", *"ada")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "mode, action",
    [
        ("keys", _filter),
        ("keys", _press("keys", "s", key="key_000000000000003")),
        ("keys", _press("keys", "l", key="key_000000000000002")),
        ("keys", _press("keys", "o", key="key_000000000000001")),
        ("keys", _press("keys", "n", key="key_000000000000001")),
        ("accounts", _press("accounts", "x", key="acct_0000000000grc2")),
        ("privacy", _press("privacy-requests", "x", where=lambda r: r.kind == "access")),
        ("privacy", _press("privacy-requests", "x", "enter", where=lambda r: r.kind == "access")),
    ],
    ids=["filter", "suspend_reason", "limits", "rotate_overlap", "new_key", "export", "export_pick_account", "pick_then_export"],
)
def test_table_dialog(snap_compare, snapshot_daemon, mode: str, action, size: str) -> None:
    app = snapshot_app(snapshot_daemon.url, Path("/srv/noor-exports"))  # shown in the export dialog: the same on every run
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_before(mode, action))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "mode, action",
    [
        ("keys", _detail("keys", "key_000000000000002")),
        ("accounts", _detail("accounts", "acct_0000000000lin3")),
        ("overview", _detail("feed", where=lambda call: call.status == 429)),
        ("overview", _detail("feed", where=lambda call: call.status == 200)),
        ("privacy", _detail("privacy-requests", where=lambda r: r.kind == "access")),
        ("privacy", _detail("audit-log", where=lambda e: e.action == "abuse.spike", tab_presses=1)),
        ("privacy", _detail("policy-versions", "v2", tab_presses=2)),
        ("usage", _detail("usage-table", "sim-gpt")),
        ("billing", _detail("billing", "acct_0000000000ada1")),
        ("routes", _detail("routes", "local-vllm:llama-3-8b")),
        ("quotas", _detail("quota-accounts", "acct_0000000000mrg4")),
    ],
    ids=["key", "account", "refused_call", "call", "request", "audit_entry", "policy", "usage_line", "billing",
         "route", "quota_account"],
)
def test_detail_panel(snap_compare, snapshot_daemon, tmp_path: Path, mode: str, action, size: str) -> None:
    app = snapshot_app(snapshot_daemon.url, tmp_path)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_before(mode, action))
