"""What `noor daemon` and the tests decide before the app is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from noor_daemon.clock import Clock
from noor_daemon.config import LoadedConfig


@dataclass
class DaemonSettings:
    """The config in effect, the data dir, the admin token and the clock: the inputs of `create_app`."""

    config: LoadedConfig
    data_dir: Path
    admin_token: str
    admin_token_source: str = "given"
    clock: Clock = field(default_factory=Clock)
    handle_signals: bool = False
    """`noor daemon` sets this: SIGHUP reloads the config. Off for in-process test daemons."""
    admin_token_hash: bytes | None = None
    """SHA-256 of the admin token when only the hash is known (after a rotation); `admin_token` is then ""."""
