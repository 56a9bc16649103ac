"""Files the daemon owns are private whatever the umask: existing 0644 files are tightened at start, new
ones (the ledger, its WAL and SHM, mail) are created 0600, and a group-writable data dir is refused.
Real processes with a real umask of 022."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SIMULATOR_CONFIG
from daemon_process import DaemonProcesses

pytestmark = pytest.mark.engine_independent

NOOR = str(Path(sys.executable).with_name("noor"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_daemon_started_under_umask_022_leaves_nothing_readable_by_others(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)
    try:
        # A data dir as an older version or a careless copy left it: files 0644, a folder 0755.
        data.mkdir(mode=0o700)
        (data / "admin_token").write_text("noor-admin-" + "x" * 40 + "\n")
        (data / "maildir").mkdir(mode=0o755)
        (data / "maildir" / "old.eml").write_text("To: someone@example.com\n\nhello\n")
        for file in (data / "admin_token", data / "maildir" / "old.eml"):
            os.chmod(file, 0o644)
        processes = DaemonProcesses(tmp_path)
        daemon = await processes.start(SIMULATOR_CONFIG, data_dir=data)
        try:
            key = await daemon.create_key("modes@example.com")  # a ledger write, a welcome mail in the Maildir
            assert key
            files = [p for p in data.rglob("*") if p.is_file()]
            names = {p.name for p in files}
            assert {"ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm", "admin_token", "old.eml"} <= names
            for path in data.rglob("*"):
                expected = 0o700 if path.is_dir() else 0o600
                assert _mode(path) == expected, f"{path.relative_to(data)} is {_mode(path):o}"
            assert _mode(data) == 0o700
        finally:
            await daemon.stop()
    finally:
        os.umask(old)


def test_a_group_writable_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    os.chmod(data, 0o770)
    result = subprocess.run([NOOR, "daemon", "--data-dir", str(data), "--port", "0"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NOOR_ADMIN_TOKEN": "noor-admin-" + "y" * 40})
    assert result.returncode == 2
    assert "group-writable" in result.stderr and "chmod 700" in result.stderr
    assert not (data / "ledger.sqlite3").exists()
