"""`python -m benchmarks [--quick]`: the gateway against a direct call to the same upstream.

Prints one table and writes benchmarks/results/latest.json. Timings are reported, never
asserted: `--quick` fails only when something errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from benchmarks.loadgen import LoadResult, percentile, run_load
from benchmarks.systems import Process, daemon_config, provision_key, start_daemon, start_upstream

RESULTS = Path(__file__).parent / "results"

UNLIMITED_PLAN = ""
GENEROUS_PLAN = """requests_per_minute = 1000000000
tokens_per_minute = 1000000000000
concurrent_requests = 1000000
requests_per_day = 1000000000000
tokens_per_day = 1000000000000
tokens_per_month = 1000000000000"""
"""Every limit on, none ever reached: the cost of checking them, not of refusing."""


@dataclass
class Row:
    system: str
    mode: str
    concurrency: int
    result: LoadResult
    cpu_ms_per_request: float | None

    def as_dict(self) -> dict:
        lat, ttft = self.result.latencies, self.result.ttfts
        return {
            "system": self.system,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "requests": self.result.requests,
            "errors": self.result.errors,
            "rps": round(self.result.rps, 1),
            "p50_ms": _round(percentile(lat, 50)),
            "p99_ms": _round(percentile(lat, 99)),
            "p999_ms": _round(percentile(lat, 99.9)),
            "ttft_p50_ms": _round(percentile(ttft, 50)),
            "cpu_ms_per_request": _round(self.cpu_ms_per_request),
        }


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def chat_body(stream: bool) -> bytes:
    return orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say ok."}], "stream": stream})


async def measure(
    system: str, target: Process, url: str, headers: dict, *, stream: bool, concurrency: int, duration: float, warmup: float
) -> Row:
    cpu_before = target.cpu_seconds()
    result = await run_load(
        url, chat_body(stream), headers, concurrency=concurrency, duration=duration, warmup=warmup, stream=stream
    )
    cpu_after = target.cpu_seconds()
    cpu = None
    if cpu_before is not None and cpu_after is not None and result.requests:
        # CPU over warm-up and measurement, divided by every call served in that time.
        served = result.requests * (duration + warmup) / duration
        cpu = (cpu_after - cpu_before) * 1000 / served
    return Row(system, "stream" if stream else "json", concurrency, result, cpu)


async def run(quick: bool) -> dict:
    duration, warmup = (2.0, 0.5) if quick else (8.0, 2.0)
    concurrencies = (1, 32) if quick else (1, 32, 256)
    upstream = start_upstream()
    daemons: dict[str, Process] = {}
    cold_start: dict[str, float] = {}
    rows: list[Row] = []
    try:
        for name, plan in (("noor (limits off)", UNLIMITED_PLAN), ("noor (limits on)", GENEROUS_PLAN)):
            daemons[name], cold_start[name] = start_daemon(name, daemon_config(upstream, plan))
        keys = {name: await provision_key(process) for name, process in daemons.items()}
        for stream in (False, True):
            for concurrency in concurrencies:
                common = dict(stream=stream, concurrency=concurrency, duration=duration, warmup=warmup)
                rows.append(await measure("direct", upstream, f"{upstream.url}/v1/chat/completions", {}, **common))
                for name, process in daemons.items():
                    headers = {"Authorization": f"Bearer {keys[name]}"}
                    rows.append(await measure(name, process, f"{process.url}/v1/chat/completions", headers, **common))
        rss = {name: process.rss_mb() for name, process in daemons.items()}
    finally:
        for process in (*daemons.values(), upstream):
            process.stop()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": _cpus()},
        "quick": quick,
        "rows": [row.as_dict() for row in rows],
        "cold_start_s": {k: round(v, 3) for k, v in cold_start.items()},
        "rss_mb_after_load": {k: _round(v) for k, v in rss.items()},
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def print_table(report: dict) -> None:
    rows = report["rows"]
    direct = {(r["mode"], r["concurrency"]): r for r in rows if r["system"] == "direct"}
    print(f"{'system':<20} {'mode':<6} {'conc':>4} {'req/s':>9} {'x direct':>8} {'p50 ms':>8} {'+p50':>7} {'p99 ms':>8} {'ttft50':>7} {'cpu ms/req':>10} {'errors':>6}")
    for r in rows:
        base = direct[(r["mode"], r["concurrency"])]
        ratio = r["rps"] / base["rps"] if base["rps"] else 0
        added = (r["p50_ms"] or 0) - (base["p50_ms"] or 0)
        print(
            f"{r['system']:<20} {r['mode']:<6} {r['concurrency']:>4} {r['rps']:>9.1f} {ratio:>8.2f} "
            f"{r['p50_ms'] or 0:>8.2f} {added:>+7.2f} {r['p99_ms'] or 0:>8.2f} {r['ttft_p50_ms'] or 0:>7.2f} "
            f"{(r['cpu_ms_per_request'] or 0):>10.3f} {r['errors']:>6}"
        )
    limits = {}
    for r in rows:
        if r["system"].startswith("noor"):
            limits.setdefault((r["mode"], r["concurrency"]), {})[r["system"]] = r["rps"]
    print("\nlimits on vs off (throughput ratio):")
    for (mode, concurrency), pair in limits.items():
        off, on = pair.get("noor (limits off)"), pair.get("noor (limits on)")
        if off and on:
            print(f"  {mode:<6} c={concurrency:<4} {on / off:.3f}")
    print(f"\ncold start to listening (s): {report['cold_start_s']}")
    print(f"RSS after load (MB): {report['rss_mb_after_load']}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (under a minute)")
    args = parser.parse_args()
    report = asyncio.run(run(args.quick))
    print_table(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    errors = sum(r["errors"] for r in report["rows"])
    if errors:
        print(f"\n{errors} requests failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
