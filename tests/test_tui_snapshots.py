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

from noor_tui.widgets.feed import LiveFeed
from noor_tui.widgets.modals import ShowOnceKeyModal, TypedConfirmModal

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
ADMIN_SCREENS = ["overview", "usage", "quotas", "keys", "accounts", "privacy", "billing"]
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

