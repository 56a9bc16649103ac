"""The ledger: schema and migrations, the group-commit writer, rollups, accounts and keys, on SQLite
(the default) or PostgreSQL (several daemons)."""

from __future__ import annotations

from pathlib import Path

from noor_daemon.config import StorageConfig
from noor_daemon.ledger.database import Ledger


def ledger_for(storage: StorageConfig, database_file: Path) -> Ledger:
    """The ledger `[storage]` asks for: PostgreSQL when it names a URL, else the SQLite file."""
    if storage.url:
        from noor_daemon.ledger.postgres import PostgresLedger  # asyncpg only when it is used

        return PostgresLedger(storage.url, pool_size=storage.pool_size)
    from noor_daemon.ledger.sqlite import SqliteLedger

    return SqliteLedger(database_file)
