"""The daemon's own doctor report (GET /admin/v1/doctor): what `noor doctor` says, as the running daemon sees it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DoctorReport:
    version: str
    config: dict[str, Any]
    """path (None: the built-in simulator), simulator_only, providers, models."""
    data_dir: str
    ledger: dict[str, Any]
    """engine (sqlite or postgresql), where (file, or URL without password), healthy."""
    keyring: dict[str, Any]
    """backend, usable."""
    secrets: dict[str, Any]
    """backend, where, usable: where `keyring:` references are read."""
    admin_token: dict[str, Any]
    """source: where the daemon took its admin token from."""
    limits: str
    """local, shared (Redis) or fallback (Redis unreachable)."""
    server: dict[str, Any]
    """tls, admin_remote."""
    billing: dict[str, Any]
    """configured."""
    mail: dict[str, Any]
    """delivery (smtp or maildir), where."""
    retention: dict[str, Any]
    """usage_days."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
