"""`python -m benchmarks.stale [--calls 1000]`: calls to a provider that closes idle connections on its own schedule.

A `noor daemon` process calls `benchmarks.closing_upstream` (each idle connection closed after a
random 0.5–2 s, its FIN 20 ms on the way) in bursts of 100 concurrent calls, JSON and streams,
separated by 0.3–2.3 s: the pool's connections have been idle about as long as the provider keeps
them. Printed: the errors the client saw, the route's breaker failures, the calls metered (once
each), the provider's idle closes, and the calls the daemon sent again on a fresh connection.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

import aiohttp
import orjson

from benchmarks.systems import BENCH_TOKEN, GENEROUS_PLAN, Process, daemon_config, free_port, provision_key, start_daemon

BURST = 100
JSON_BODY = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say ok."}]})
STREAM_BODY = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say ok."}], "stream": True,
                            "stream_options": {"include_usage": True}})


async def _drive(url: str, key: str, calls: int, seed: int) -> dict:
    rng = random.Random(seed)
    statuses: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def one(stream: bool) -> None:
            try:
                async with http.post(f"{url}/v1/chat/completions", data=STREAM_BODY if stream else JSON_BODY,
                                     headers={"Content-Type": "application/json"}) as response:
                    body = await response.read()
                    ok = response.status == 200 and (b"[DONE]" in body if stream else b'"usage"' in body)
                    label = str(response.status) if ok or response.status != 200 else "200 incomplete"
            except aiohttp.ClientError as exc:
                label = type(exc).__name__
            statuses[label] = statuses.get(label, 0) + 1

        sent = 0
        while sent < calls:
            burst = min(BURST, calls - sent)
            await asyncio.gather(*(one(i % 2 == 1) for i in range(burst)))
            sent += burst
            if sent < calls:
                await asyncio.sleep(rng.uniform(0.3, 2.3))
        metered, retries = 0.0, 0.0
        for _ in range(100):  # rows are committed just after their answers
            metrics = await (await http.get(f"{url}/metrics")).text()
            metered = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("noor_requests_total{"))
            if metered >= calls:
                break
            await asyncio.sleep(0.05)
        for line in metrics.splitlines():
            if line.startswith('noor_upstream_retries_total{provider="bench"}'):
                retries = float(line.rsplit(" ", 1)[1])
        routes = await (await http.get(f"{url}/admin/v1/routes", headers={"Authorization": f"Bearer {BENCH_TOKEN}"})).json()
    failures = sum(row["failures"] for row in routes["data"])
    return {"calls": calls, "statuses": statuses, "client_errors": calls - statuses.get("200", 0),
            "breaker_failures": failures, "metered": int(metered), "retries": int(retries)}


def run(calls: int = 1000, *, parent: Path | None = None, seed: int = 18) -> dict:
    """Start the closing stand-in and a daemon, drive `calls` calls, stop both."""
    port = free_port()
    upstream = Process("closing upstream", [sys.executable, "-m", "benchmarks.closing_upstream", "--port", str(port)], port)
    daemon = None
    try:
        upstream.wait_until_listening()
        daemon = start_daemon("noor (stale connections)", daemon_config(upstream, GENEROUS_PLAN),
                              parent=parent or Path(tempfile.mkdtemp(prefix="noor-stale-")))
        daemon.wait_until_listening(60)
        key = asyncio.run(provision_key(daemon))
        return asyncio.run(_drive(daemon.url, key, calls, seed))
    finally:
        if daemon is not None:
            daemon.stop()
        upstream.stop()


def describe(result: dict) -> str:
    return (f"{result['calls']:,} calls to a provider closing idle connections after 0.5–2 s: "
            f"{result['client_errors']} client errors, {result['breaker_failures']} breaker failures, "
            f"{result['metered']:,} metered, {result['retries']} sent again on a fresh connection")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    result = run(args.calls)
    print(describe(result))
    print(f"statuses: {result['statuses']}")
    sys.exit(1 if result["client_errors"] or result["breaker_failures"] or result["metered"] != result["calls"] else 0)


if __name__ == "__main__":
    main()
