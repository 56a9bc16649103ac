"""File permissions: the data dir 0700; ledger, exports, Maildir messages, token and secret files
0600 whatever the umask; a world-writable data dir refused (create_app and `noor daemon`, exit 2)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_process import free_port, noor_executable
from security_helpers import serve

from noor_daemon import paths
from noor_daemon.client import AdminClient
from noor_daemon.secret_store import FileBackend, ensure_admin_token

pytestmark = pytest.mark.engine_independent

SIM = """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator" }]
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The usual 022 umask, so only the code's own choices can make a file private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_every_file_of_the_data_dir_is_private(tmp_path: Path, lax_umask) -> None:
    data = tmp_path / "data"
    async with serve(SIM, data) as served:
        async with AdminClient(served.url, "noor-admin-test-token") as admin:
            await admin.create_account("files@example.com")  # a welcome mail, to the Maildir (no [smtp])
            await admin.create_key("files@example.com")
            export = tmp_path / "exports" / "files.json"
            export.parent.mkdir()
            await admin.export_account("files@example.com", export)
            assert mode(export) == 0o600, "an export holds an account's data"
            rotated = await admin.rotate_admin_token()
            assert rotated["token"]
        maildir = data / "maildir"
        for _ in range(100):
            if maildir.exists() and any((maildir / "new").iterdir()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no welcome mail was delivered to the Maildir")
    FileBackend(data / "secrets.json").set("smtp", "a-password")
    ensure_admin_token(data)  # no keyring here: the client's copy goes to a 0600 file

    assert mode(data) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"ledger.sqlite3", "admin_token", "admin_token.sha256", "secrets.json"} <= names
    assert any(p.parent.name == "new" for p in files), "the Maildir message is checked too"
    for file in files:
        assert mode(file) == 0o600, f"{file.relative_to(data)} is {mode(file):04o}"
    for directory in [p for p in data.rglob("*") if p.is_dir()]:
        assert mode(directory) & 0o077 == 0, f"{directory.relative_to(data)} is {mode(directory):04o}"


async def test_a_world_writable_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o777)
    with pytest.raises(paths.UnsafeDirectory, match="world-writable"):
        async with serve(SIM, data):
            pass
    assert mode(data) == 0o777, "refused, not silently repaired"
    assert list(data.iterdir()) == [], "nothing written into it"

    config = tmp_path / "sim.toml"
    config.write_text(SIM)
    result = subprocess.run(
        [noor_executable(), "daemon", "--port", str(free_port()), "--data-dir", str(data), "--config", str(config)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NOOR_ADMIN_TOKEN": "noor-admin-files"},
    )
    assert result.returncode == 2
    assert "world-writable" in result.stderr and "chmod 700" in result.stderr
    assert "Traceback" not in result.stderr


async def test_noor_daemon_creates_a_private_data_dir(tmp_path: Path) -> None:
    """`noor daemon` itself (umask 077): the data dir and the ledger's files."""
    from daemon_process import start_daemon_process

    daemon = await start_daemon_process(tmp_path, SIM)
    try:
        assert mode(daemon.data_dir) == 0o700
        files = list(daemon.data_dir.iterdir())
        assert "ledger.sqlite3" in {f.name for f in files}
        for file in files:
            assert mode(file) == 0o600, f"{file.name} is {mode(file):04o}"
    finally:
        await daemon.stop()
