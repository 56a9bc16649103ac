"""Where NoorAPI keeps its files: the platform's user dirs unless told otherwise."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import platformdirs

APP_NAME = "noorapi"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir`, else `NOOR_DATA_DIR`, else the platform's user data dir."""
    chosen = explicit or os.environ.get("NOOR_DATA_DIR")
    return Path(chosen) if chosen else Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


class UnsafeDirectory(Exception):
    """A data dir others can write to: refused, never silently repaired."""


PUBLIC_FILES = ("ca.pem", "cert.pem")
"""Certificates `noor tls self-signed` writes: public by nature, left readable (their keys are not)."""
GUARDED_FILES = ("secrets.json",)
"""Files whose own loader refuses a loose mode (`chmod 600` named): secrets others could read may be known
already, so they are not quietly fixed here."""


def ensure_private_dir(path: Path) -> Path:
    """Create `path` readable by its owner only, and make everything in it so; the ledger and tokens live here.

    An existing directory that others may write to (group or world) is refused (`UnsafeDirectory`): another
    user could have planted or swapped files in it, so tightening its mode now would not help. So is a file
    in it that belongs to someone else, or whose mode cannot be tightened. Files left 0644 by an older
    version or a copy become 0600, directories 0700.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = 0
    if mode & 0o022:
        who = "world" if mode & 0o002 else "group"
        raise UnsafeDirectory(
            f"{path} is {who}-writable (mode {mode & 0o7777:04o}); refusing to keep the ledger and tokens there. "
            f"Check its contents, then `chmod 700 {path}`, or choose another --data-dir"
        )
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    _tighten(path)
    return path


def _tighten(root: Path) -> None:
    uid = os.getuid()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            entry = Path(folder) / name
            info = entry.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue  # never follow or change a link's target
            if info.st_uid != uid:
                raise UnsafeDirectory(f"{entry} belongs to another user (uid {info.st_uid}); refusing to use {root}")
            if name in GUARDED_FILES:
                continue
            wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o644 & ~0o022 if name in PUBLIC_FILES else 0o600
            if stat.S_IMODE(info.st_mode) & ~wanted:
                try:
                    os.chmod(entry, stat.S_IMODE(info.st_mode) & wanted)
                except OSError as exc:
                    raise UnsafeDirectory(f"cannot make {entry} private ({exc.strerror}); fix its mode or owner") from None


def database_file(data: Path) -> Path:
    return data / "ledger.sqlite3"


def admin_token_file(data: Path) -> Path:
    return data / "admin_token"
