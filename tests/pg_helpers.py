"""PostgreSQL for tests: a fresh database per test on the local server, dropped afterwards.

The server is the machine's own (CI starts it: `.ci/run`); `NOOR_TEST_PG` names it
(default: the `postgres` superuser on 127.0.0.1 with trust auth, as on the CI machine).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

SERVER = os.environ.get("NOOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


async def _admin():
    import asyncpg

    return await asyncpg.connect(f"{SERVER}/postgres", timeout=5)


async def available() -> bool:
    try:
        conn = await _admin()
    except Exception:
        return False
    await conn.close()
    return True


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of an empty database that exists for the `async with` block."""
    try:
        conn = await _admin()
    except Exception as exc:  # pragma: no cover - CI has the server
        pytest.skip(f"PostgreSQL is not reachable at {SERVER} ({type(exc).__name__})")
    name = f"noor_t_{secrets.token_hex(6)}"
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    try:
        yield f"{SERVER}/{name}"
    finally:
        conn = await _admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()
