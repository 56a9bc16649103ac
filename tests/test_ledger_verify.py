"""`noor ledger verify [--repair]`: a difference planted by hand in each derived table is found, named, and
repaired; a ledger written by the daemon verifies clean. Through the real CLI, against a running daemon."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SIMULATOR_CONFIG, STORAGE
from gateway_helpers import openai_client

from noor_daemon.ledger.usage import RouteSample, UsageEvent
from noor_daemon.ledger.verify import verify
from noor_daemon.state import LEDGER, SETTINGS

NOOR = str(Path(sys.executable).with_name("noor"))


async def _noor(daemon, *args: str) -> subprocess.CompletedProcess:
    """`noor ledger verify …` on the daemon's ledger (its data dir, or its PostgreSQL through a config file)."""
    command = [NOOR, "ledger", "verify", "--data-dir", str(daemon.data_dir), *args]
    url = daemon.app[SETTINGS].config.config.storage.url
    if url:
        config = daemon.data_dir / "verify.toml"
        config.write_text(f'[storage]\nurl = "{url}"\n')
        command += ["--config", str(config)]
    env = {**os.environ, "NOOR_DEBUG": "1"}
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120, env=env)


async def test_planted_differences_are_found_then_repaired(start_daemon) -> None:
    daemon = await start_daemon(SIMULATOR_CONFIG)
    key = await daemon.create_key("verify@example.com")
    client = openai_client(daemon, key)
    for i in range(6):
        await client.chat.completions.create(model="sim-gpt" if i % 2 else "sim-claude", messages=[{"role": "user", "content": "hi"}])
    ledger = daemon.app[LEDGER]
    now = int(daemon.clock.now() * 1000)
    await ledger.append_usage(
        [UsageEvent(ts=now - 3 * 86_400_000, model="sim-gpt", endpoint="chat/completions", status=200, latency_ms=4.5,
                    account_id=None, key_id=None, provider="simulator", prompt_tokens=3, completion_tokens=4)],
        [RouteSample(now - 86_400_000, "simulator", "sim-gpt", 502, 12.0)],
    )
    clean = await _noor(daemon, "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert json.loads(clean.stdout)["events"] == 7 and json.loads(clean.stdout)["attempts"] == 1

    async def plant(db) -> None:
        await db.execute("UPDATE usage_hourly SET requests = requests + 1 WHERE model = 'sim-claude'")
        await db.execute("DELETE FROM usage_daily WHERE account_id = ''")
        await db.execute(
            "INSERT INTO route_hourly (hour, provider, model, requests, errors, prompt_tokens, completion_tokens, "
            "latency_ms_sum, ttft_ms_sum, ttft_count) VALUES (0, 'ghost', 'sim-gpt', 1, 0, 5, 5, 1.0, 0, 0)"
        )

    await ledger.write(plant)
    found = await _noor(daemon, "--json")
    assert found.returncode == 1, found.stdout + found.stderr
    report = json.loads(found.stdout)
    by_table = {d["table"]: d for d in report["differences"]}
    assert set(by_table) == {"usage_hourly", "usage_daily", "route_hourly"} and report["difference_count"] == 3
    hourly = by_table["usage_hourly"]
    assert hourly["key"]["model"] == "sim-claude" and hourly["found"]["requests"] == hourly["expected"]["requests"] + 1
    assert by_table["usage_daily"]["found"] is None and by_table["usage_daily"]["expected"]["prompt_tokens"] == 3
    assert by_table["route_hourly"]["expected"] is None and by_table["route_hourly"]["key"]["provider"] == "ghost"

    text = await _noor(daemon)  # the table a person reads: table, time, key, expected, found
    assert text.returncode == 1 and "3 differences" in text.stdout and "ghost" in text.stdout

    repaired = await _noor(daemon, "--repair", "--json")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert json.loads(repaired.stdout)["repaired"]["differences_before"] == 3
    assert (await verify(ledger)).ok
    # The daemon keeps counting on the repaired rollups.
    await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "again"}])
    assert (await verify(ledger)).ok


async def test_a_ledger_written_by_the_daemon_verifies_clean_while_it_serves(start_daemon) -> None:
    """Verify reads one snapshot: calls committed while it runs cause no false difference."""
    daemon = await start_daemon(SIMULATOR_CONFIG)
    key = await daemon.create_key("busy@example.com")
    client = openai_client(daemon, key)
    await daemon.app[LEDGER].append_usage([
        UsageEvent(ts=int(daemon.clock.now() * 1000) - i * 600_000, model="sim-gpt", endpoint="chat/completions",
                   status=200 if i % 9 else 500, latency_ms=2.0, account_id=None, key_id=None, provider="simulator",
                   prompt_tokens=i % 50, completion_tokens=i % 30)
        for i in range(20_000)
    ])
    stop = asyncio.Event()

    async def traffic() -> int:
        sent = 0
        while not stop.is_set():
            await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "busy"}])
            sent += 1
        return sent

    calls = asyncio.create_task(traffic())
    result = await _noor(daemon, "--json")
    stop.set()
    assert await calls > 0
    assert result.returncode == 0, result.stdout + result.stderr
    assert STORAGE in ("sqlite", "postgresql")
