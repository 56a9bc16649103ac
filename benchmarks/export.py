"""`python -m benchmarks.export [--events N]`: export an account with a million usage events.

Builds a ledger holding one account with N usage events (default 1,000,000), starts
`noor daemon` on it as a real process, and downloads the account's JSON and CSV export
through the admin API. Reports the time, the bytes, and the daemon's resident memory: its
level before the export and its peak during it (Linux: /proc/PID/status VmHWM, reset through
/proc/PID/clear_refs just before). Constant memory means the peak stays near the level
before, however many events there are. Writes benchmarks/results/export.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.systems import BENCH_TOKEN, Process, free_port

RESULTS = Path(__file__).parent / "results"
EMAIL = "bench.export@example.org"
CHUNK = 50_000


async def build_ledger(data_dir: Path, events: int) -> str:
    """One account, one key and `events` usage events (the last ones within retention)."""
    from noor_daemon import paths
    from noor_daemon.clock import Clock
    from noor_daemon.domain.accounts import KeyRing
    from noor_daemon.ledger.accounts import AccountStore
    from noor_daemon.ledger.audit import AuditLog
    from noor_daemon.ledger.sqlite import SqliteLedger
    from noor_daemon.ledger.usage import UsageEvent

    paths.ensure_private_dir(data_dir)
    ledger = SqliteLedger(paths.database_file(data_dir))
    await ledger.open()
    clock = Clock()
    audit = AuditLog(ledger, clock)
    store = AccountStore(ledger, KeyRing(), clock, audit)
    account = await store.create_account(EMAIL, "free")
    key = (await store.create_key(account.id, name="bench")).key
    now_ms = int(time.time() * 1000)
    models = ("gpt-4o-mini", "claude-3-5-haiku", "text-embedding-3-small")
    for start in range(0, events, CHUNK):
        rows = [
            UsageEvent(
                ts=now_ms - (events - i) * 500,  # one every half second: the oldest ~6 days back
                model=models[i % 3],
                endpoint="chat/completions",
                status=200 if i % 50 else 429,
                latency_ms=120.0 + i % 400,
                account_id=account.id,
                key_id=key.id,
                provider="openai",
                prompt_tokens=200 + i % 300,
                completion_tokens=50 + i % 700,
                ttft_ms=80.0 + i % 90,
                stream=bool(i % 2),
            )
            for i in range(start, min(start + CHUNK, events))
        ]
        await ledger.append_usage(rows)
    await ledger.close()
    return account.id


def memory_kb(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def download(url: str, account_id: str, fmt: str) -> tuple[int, int, float]:
    """(bytes, events, seconds): the whole export read and dropped chunk by chunk."""
    size = lines = 0
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {BENCH_TOKEN}"}, timeout=timeout) as http:
        async with http.get(f"{url}/admin/v1/accounts/{account_id}/export", params={"format": fmt}) as response:
            response.raise_for_status()
            announced = int(response.headers.get("X-Noor-Export-Events", "0"))
            async for chunk in response.content.iter_chunked(256 * 1024):
                size += len(chunk)
                lines += chunk.count(b"\n")
    return size, announced, time.perf_counter() - started


async def main(events: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="noor-export-bench-") as tmp:
        data = Path(tmp) / "data"
        started = time.perf_counter()
        account_id = await build_ledger(data, events)
        print(f"built a ledger with {events:,} usage events in {time.perf_counter() - started:.1f}s", file=sys.stderr)

        config = Path(tmp) / "noor.toml"
        config.write_text("# the built-in simulator; nothing else is needed to export\n")
        port = free_port()
        daemon = Process(
            "noor daemon",
            [sys.executable, "-m", "noor_daemon", "daemon", "--port", str(port), "--data-dir", str(data), "--log-level", "warning"],
            port,
            env={"NOOR_ADMIN_TOKEN": BENCH_TOKEN, "NOOR_CONFIG": str(config)},
        )
        try:
            daemon.wait_until_listening(60)
            await asyncio.sleep(1.0)  # let the start-up retention run finish
            results = {}
            for fmt in ("json", "csv"):
                pid = daemon.popen.pid
                before = memory_kb(pid)
                peak_reset = reset_peak(pid)
                size, announced, seconds = await download(daemon.url, account_id, fmt)
                after = memory_kb(pid)
                results[fmt] = {
                    "events": announced,
                    "bytes": size,
                    "seconds": round(seconds, 2),
                    "events_per_second": round(announced / seconds),
                    "mb_per_second": round(size / seconds / 1e6, 1),
                    "daemon_rss_before_mb": round(before["VmRSS"] / 1024, 1),
                    "daemon_rss_peak_mb": round(after["VmHWM"] / 1024, 1) if peak_reset else None,
                    "daemon_rss_after_mb": round(after["VmRSS"] / 1024, 1),
                }
        finally:
            daemon.stop()
    return {"events": events, "formats": results}


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="usage events in the account (default 1,000,000)")
    args = parser.parse_args()
    if not Path("/proc/self/status").exists():
        sys.exit("this benchmark reads the daemon's memory from /proc (Linux)")
    report = asyncio.run(main(args.events))
    print(f"{'format':<6} {'events':>10} {'MB':>8} {'seconds':>8} {'events/s':>10} {'RSS before':>11} {'RSS peak':>9}")
    for fmt, r in report["formats"].items():
        peak = "n/a" if r["daemon_rss_peak_mb"] is None else f"{r['daemon_rss_peak_mb']} MB"
        print(
            f"{fmt:<6} {r['events']:>10,} {r['bytes'] / 1e6:>8.1f} {r['seconds']:>8} {r['events_per_second']:>10,} "
            f"{r['daemon_rss_before_mb']:>8} MB {peak:>9}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "export.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    run()
