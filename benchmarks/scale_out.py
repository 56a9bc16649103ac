"""Throughput with 1, 2 and 3 daemons sharing one PostgreSQL (and one Redis, when it answers).

The load generator spreads its connections over the daemons as a load balancer would
(connection i to daemon i mod n). On a machine of 2 cores the daemons, PostgreSQL, Redis,
the stand-in upstream and the load generator all share those cores, so the figures show
what sharing the ledger costs, not what more machines would add.
`python -m benchmarks` runs it; it is skipped cleanly when PostgreSQL is not reachable.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from urllib.parse import urlsplit

from benchmarks.loadgen import LoadGenerator
from benchmarks.systems import GENEROUS_PLAN, Process, daemon_config, provision_key, start_daemon

SERVER = os.environ.get("NOOR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("NOOR_BENCH_REDIS", "redis://127.0.0.1:6379/0")
DAEMONS = (1, 2, 3)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


async def _database(action: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{SERVER}/postgres", timeout=5)
    try:
        await conn.execute(f"CREATE DATABASE {name}" if action == "create" else f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


def run(
    loadgen: LoadGenerator, upstream: Process, body: bytes, *, concurrency: int, warmup: float, duration: float, parent, log
) -> dict:
    if not _reachable(SERVER, 5432):
        return {"status": "skipped", "reason": f"PostgreSQL is not reachable at {SERVER}"}
    shared_limits = _reachable(REDIS, 6379)
    name = f"noor_bench_{secrets.token_hex(4)}"
    asyncio.run(_database("create", name))
    extra = f'[storage]\nurl = "{SERVER}/{name}"\n' + (f'\n[limits]\nredis_url = "{REDIS}"\n' if shared_limits else "")
    daemons: list[Process] = []
    out: dict = {"status": "ok", "redis": shared_limits, "concurrency": concurrency, "rows": []}
    try:
        for i in range(max(DAEMONS)):
            daemons.append(start_daemon(f"noor pg {i}", daemon_config(upstream, GENEROUS_PLAN, extra), parent=parent))
        for daemon in daemons:
            daemon.wait_until_listening(60)
        key = asyncio.run(provision_key(daemons[0]))  # one key, known to every daemon through the database
        for n in DAEMONS:
            log(f"scale-out: json c={concurrency} over {n} daemon(s) on PostgreSQL" + (" and Redis" if shared_limits else ""))
            urls = [f"{d.url}/v1/chat/completions" for d in daemons[:n]]
            result = loadgen.run(
                urls[0], body, {"Authorization": f"Bearer {key}"}, concurrency=concurrency, duration=duration,
                warmup=warmup, cpu_pids=[d.pid for d in daemons[:n]] + [upstream.pid], spread=urls[1:],
            )
            daemon_cpu = sum(result["cpu_s"].get(str(d.pid)) or 0.0 for d in daemons[:n])
            requests = result["requests"]
            out["rows"].append({
                "daemons": n,
                "requests": requests,
                "errors": result["errors"],
                "statuses": result["statuses"],
                "rps": round(requests / result["seconds"], 1) if result["seconds"] else 0.0,
                "latency_ms": {q: round(v, 3) if v is not None else None for q, v in result["latency_ms"].items()},
                "cpu_ms_per_request": round(daemon_cpu * 1000 / requests, 3) if requests else None,
            })
        for daemon in daemons:
            if not daemon.alive():
                out.setdefault("errors", []).append(f"{daemon.name} died: {daemon.log_tail(500)}")
    finally:
        for daemon in daemons:
            daemon.stop()
        asyncio.run(_database("drop", name))
    return out
