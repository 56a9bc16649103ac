"""Where NoorAPI keeps its files: the platform's user dirs unless told otherwise."""

from __future__ import annotations

import os
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


def ensure_private_dir(path: Path) -> Path:
    """Create `path` readable by its owner only; the ledger and tokens live here.

    An existing directory that anyone may write to is refused (`UnsafeDirectory`): another
    user could have planted or swapped files in it, so tightening its mode now would not help.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = 0
    if mode & 0o002:
        raise UnsafeDirectory(
            f"{path} is world-writable (mode {mode & 0o7777:04o}); refusing to keep the ledger and tokens there. "
            f"Check its contents, then `chmod 700 {path}`, or choose another --data-dir"
        )
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def database_file(data: Path) -> Path:
    return data / "ledger.sqlite3"


def admin_token_file(data: Path) -> Path:
    return data / "admin_token"
