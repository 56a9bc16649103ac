"""PostgreSQL going away under a running daemon: calls are refused (503) rather than served
unmetered, no row is lost, and the daemon recovers by itself when the server is back."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pg_helpers
from conftest import SIMULATOR_CONFIG

from noor_daemon.state import LEDGER


async def _chat_status(session: aiohttp.ClientSession, daemon, key: str) -> int:
    async with session.post(
        f"{daemon.url}/v1/chat/completions",
        json={"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        if response.status == 503:
            body = await response.json()
            assert body["error"]["type"] and body["error"]["message"]  # OpenAI's error shape
        return response.status


async def _cut_off(database_url: str, allow: bool) -> None:
    """Refuse new connections to the database and end the open ones (or allow them again)."""
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(f"{pg_helpers.SERVER}/postgres")
    try:
        await conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'true' if allow else 'false'}")
        if not allow:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await conn.close()


async def test_a_postgresql_outage_answers_503_then_recovers_with_every_row(start_daemon):
    async with pg_helpers.fresh_database() as url:
        daemon = await start_daemon(SIMULATOR_CONFIG + f'\n[storage]\nurl = "{url}"\n')
        key = await daemon.create_key()
        async with aiohttp.ClientSession() as session:
            assert await _chat_status(session, daemon, key) == 200
            await _cut_off(url, allow=False)
            statuses = []
            while 503 not in statuses and len(statuses) < 50:
                statuses.append(await _chat_status(session, daemon, key))
            assert statuses[-1] == 503
            statuses += [await _chat_status(session, daemon, key) for _ in range(3)]
            assert statuses[-3:] == [503] * 3  # refused up front while the ledger cannot commit
            async with session.get(f"{daemon.url}/healthz") as response:
                assert response.status == 503
            await _cut_off(url, allow=True)
            for _ in range(200):
                if daemon.app[LEDGER].healthy:
                    break
                await asyncio.sleep(0.05)
            assert daemon.app[LEDGER].healthy, "the ledger did not recover"
            assert await _chat_status(session, daemon, key) == 200
        rows = await daemon.usage_rows()
        # The first call, every call answered during the outage (200 or 503 metered later), the last one.
        assert len(rows) == 1 + len([s for s in statuses if s in (200, 503)]) + 1
        assert {r["status"] for r in rows} <= {200, 503}
        await daemon.runner.cleanup()
