"""The dashboard's read path over a big ledger, and the export of one account's events.

`python -m benchmarks.dashboard [--events N]` runs it alone; `python -m benchmarks` runs it as
part of the whole table (10,000,000 events; `--quick`: 200,000).

The ledger is generated in bulk straight into SQLite: the daemon's own schema (its
migrations) and 20 accounts with 2 keys each (made by the daemon's `AccountStore`), then N
usage events over the last 88 days (one account holds a tenth of them: the export) and the
matching `usage_hourly` and `route_hourly` rollups (`usage_daily` summed from the hourly ones),
with executemany in big transactions and the event indexes built after the rows. The file is cached under
~/.cache/noorapi-bench/ (or $NOOR_BENCH_CACHE), keyed by the schema version, the generator's
version and N, so reruns skip the generation. The rollups follow the clock: a cached ledger
generated hours or days ago has its rollup hours moved forward by whole hours before use, so
"the last day" always holds a day of traffic (raw events keep their times; the daemon is run
with a retention longer than their age so nothing is deleted under the benchmark).

A `noor daemon` process is started on that ledger, and the admin endpoints the dashboard
calls are timed over one kept-alive connection: the usage summary, the usage series for each
range and grouping, an account's quota, the overview and the upstreams. Then the export of
the big account (JSON, and CSV in the full run) is downloaded, with the daemon's resident
memory before and at its peak during it (benchmarks/export.py's measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import export as export_bench
from benchmarks.loadgen import percentile
from benchmarks.systems import BENCH_TOKEN, Process, free_port, http_get

GENERATOR_VERSION = 2
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SPAN_HOURS = 88 * 24
ACCOUNTS = 20
KEYS_PER_ACCOUNT = 2
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "claude-sonnet-4", "text-embedding-3-small")
PROVIDERS = {"gpt-4o-mini": "openai", "gpt-4o": "openai", "claude-3-5-haiku": "anthropic",
             "claude-sonnet-4": "anthropic", "text-embedding-3-small": "openai"}
EXPORT_EMAIL = "bench.export@example.org"
BATCH = 250_000
TEMPLATES = 8191  # a prime: the pool's cycle and the keys' cycle never line up


def cache_dir() -> Path:
    return Path(os.environ.get("NOOR_BENCH_CACHE") or Path.home() / ".cache" / "noorapi-bench")


# -- generation ----------------------------------------------------------------------------


async def _accounts(data_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    """The schema, 20 accounts and 40 keys through the daemon's own code. Returns the export
    account's id and every (account_id, key_id)."""
    from noor_daemon import paths
    from noor_daemon.clock import Clock
    from noor_daemon.domain.accounts import KeyRing
    from noor_daemon.ledger.accounts import AccountStore
    from noor_daemon.ledger.audit import AuditLog
    from noor_daemon.ledger.sqlite import SqliteLedger

    paths.ensure_private_dir(data_dir)
    ledger = SqliteLedger(paths.database_file(data_dir))
    await ledger.open()
    try:
        clock = Clock()
        store = AccountStore(ledger, KeyRing(), clock, AuditLog(ledger, clock))
        pairs = []
        export_id = ""
        for n in range(ACCOUNTS):
            email = EXPORT_EMAIL if n == 0 else f"bench.user{n:02d}@example.org"
            account = await store.create_account(email, "free")
            export_id = export_id or account.id
            for k in range(KEYS_PER_ACCOUNT):
                issued = await store.create_key(account.id, name=f"key{k}")
                pairs.append((account.id, issued.key.id))
    finally:
        await ledger.close()
    return export_id, pairs


def generate(data_dir: Path, events: int, export_events: int, now_ms: int, log=print) -> dict:
    """Write the ledger through the ledger's own writer; returns its description (also kept as meta.json)."""
    from noor_daemon import paths
    from noor_daemon.ledger.sqlite import SqliteLedger
    from noor_daemon.ledger.usage import UsageEvent

    export_id, pairs = asyncio.run(_accounts(data_dir))
    export_pairs = [p for p in pairs if p[0] == export_id]
    other_pairs = [p for p in pairs if p[0] != export_id]
    db_path = paths.database_file(data_dir)
    db = sqlite3.connect(db_path, isolation_level=None)
    # Bulk speed: no journal sync, and the events' indexes built once at the end over sorted rows.
    db.executescript(
        """PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;
           PRAGMA secure_delete = OFF; DROP INDEX IF EXISTS usage_events_ts;
           DROP INDEX IF EXISTS usage_events_account_ts;"""
    )
    rng = random.Random(20240601)
    start_ms = now_ms - SPAN_HOURS * HOUR_MS
    step = SPAN_HOURS * HOUR_MS / events
    every = max(1, events // export_events) if export_events else 0
    n_models = len(MODELS)
    started = time.perf_counter()

    # Each event's fields come from a pool of random templates and its key from a cycle that is
    # coprime with the pool, so every (hour, key, model) combination occurs as real traffic would
    # make it, for a few Python operations per row.
    templates = []
    for _ in range(TEMPLATES):
        model = MODELS[int(rng.random() * n_models)]
        status = 429 if rng.random() < 0.015 else (500 if rng.random() < 0.005 else 200)
        ok = status == 200
        is_stream = rng.random() < 0.4
        templates.append((
            model, PROVIDERS[model], status, int(50 + rng.random() * 1500) if ok else 0,
            int(rng.random() * 600) if ok else 0, round(80 + rng.random() * 2000, 3),
            round(40 + rng.random() * 400, 3) if is_stream else None, is_stream,
        ))
    n_other, n_export = len(other_pairs), len(export_pairs)

    def batch(lo: int, hi: int) -> list[UsageEvent]:
        out = []
        for i in range(lo, hi):
            if every and i % every == 0:
                account_id, key_id = export_pairs[i // every % n_export]
            else:
                account_id, key_id = other_pairs[i % n_other]
            model, provider, status, prompt, completion, latency, ttft, is_stream = templates[i % TEMPLATES]
            out.append(UsageEvent(int(start_ms + i * step), model, "chat/completions", status, latency, account_id,
                                  key_id, provider, prompt, completion, ttft, is_stream))
        return out

    for lo in range(0, events, BATCH):
        db.execute("BEGIN")
        SqliteLedger.write_batch(db, batch(lo, min(events, lo + BATCH)), [], [])  # the batch commit's own writer
        if events >= 2_000_000 and (lo // BATCH) % 8 == 7:
            log(f"  … {lo + BATCH:,} events written ({time.perf_counter() - started:.0f}s)")
    written = time.perf_counter() - started
    # The indexes exactly as the schema declares them, built once over sorted rows.
    db.executescript(
        """CREATE INDEX usage_events_ts ON usage_events(ts);
           CREATE INDEX usage_events_account_ts ON usage_events(account_id, ts);
           PRAGMA journal_mode = WAL;"""
    )
    hourly = db.execute("SELECT count(*) FROM usage_hourly").fetchone()[0]
    route = db.execute("SELECT count(*) FROM route_hourly").fetchone()[0]
    db.close()
    return {
        "events": events,
        "export_events": export_events if every else 0,
        "export_account": export_id,
        "accounts": ACCOUNTS,
        "keys": len(pairs),
        "models": len(MODELS),
        "usage_hourly_rows": hourly,
        "route_hourly_rows": route,
        "generated_at_ms": now_ms,
        "rollups_at_ms": now_ms,
        "write_seconds": round(written, 1),
        "generate_seconds": round(time.perf_counter() - started, 1),
    }


def _shift_usage(data_dir: Path, meta: dict, now_ms: int) -> int:
    """Move the whole ledger forward by whole days (`ledger.usage.shift_usage`, facts and rollups alike), so
    its last day is today. Returns the days moved."""
    from noor_daemon import paths
    from noor_daemon.ledger.sqlite import SqliteLedger
    from noor_daemon.ledger.usage import shift_usage

    days = (now_ms // DAY_MS) - (meta["rollups_at_ms"] // DAY_MS)
    if days <= 0:
        return 0

    async def shift() -> None:
        ledger = SqliteLedger(paths.database_file(data_dir))
        await ledger.open()
        try:
            await ledger.write(lambda db: shift_usage(db, days * DAY_MS))
            await ledger.checkpoint()
        finally:
            await ledger.close()

    asyncio.run(shift())
    meta["rollups_at_ms"] += days * DAY_MS
    return days


def cached_ledger(events: int, log=print) -> tuple[Path, dict]:
    """The data dir of a generated ledger with `events` events, from the cache when it holds one."""
    from noor_daemon.ledger.schema import SCHEMA_VERSION

    export_events = events // 10
    home = cache_dir() / f"ledger-s{SCHEMA_VERSION}-g{GENERATOR_VERSION}-{events}"
    data_dir, meta_file = home / "data", home / "meta.json"
    now_ms = int(time.time() * 1000)
    if meta_file.exists() and data_dir.exists():
        meta = json.loads(meta_file.read_text())
        meta["cached"] = True
        shifted = _shift_usage(data_dir, meta, now_ms)
        meta["shifted_days"] = shifted
        if shifted:
            meta_file.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("cached", "shifted_days")}))
        return data_dir, meta
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    os.chmod(home, 0o700)
    log(f"generating a ledger of {events:,} usage events in {home} (cached for later runs)…")
    meta = generate(data_dir, events, export_events, now_ms, log=log)
    meta_file.write_text(json.dumps(meta))
    meta["cached"] = False
    return data_dir, meta


# -- measurement -----------------------------------------------------------------------------


def dashboard_queries(account_id: str) -> list[tuple[str, str]]:
    """(label, path) of each admin request the dashboard makes."""
    base = "/admin/v1"
    return [
        ("usage summary (24 h)", f"{base}/usage/summary"),
        ("usage summary (30 days)", f"{base}/usage/summary?hours=720"),
        ("series day by model", f"{base}/usage/series?range=day&group=model"),
        ("series 7d by model", f"{base}/usage/series?range=7d&group=model"),
        ("series 30d by model", f"{base}/usage/series?range=30d&group=model"),
        ("series 90d by model", f"{base}/usage/series?range=90d&group=model"),
        ("series 30d by key", f"{base}/usage/series?range=30d&group=key"),
        ("series 30d by account", f"{base}/usage/series?range=30d&group=account"),
        ("series 30d, one account", f"{base}/usage/series?range=30d&group=model&account={account_id}"),
        ("account quota", f"{base}/accounts/{account_id}/quota"),
        ("overview (last hour)", f"{base}/overview"),
        ("upstreams", f"{base}/upstreams"),
    ]


def time_queries(port: int, account_id: str, repeats: int) -> tuple[list[dict], list[str]]:
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    results, errors = [], []
    conn = None
    for label, path in dashboard_queries(account_id):
        timings = []
        status = 0
        for attempt in range(repeats + 1):  # the first one warms the page cache and is not counted
            status, body, seconds, conn = http_get(port, path, headers, conn)
            if status != 200:
                errors.append(f"{label}: HTTP {status} {body[:200]!r}")
                break
            if attempt:
                timings.append(seconds * 1000)
        timings.sort()
        results.append(
            {
                "query": label,
                "path": path.replace(account_id, "{account}"),
                "status": status,
                "p50_ms": round(percentile(timings, 50, presorted=True), 2) if timings else None,
                "max_ms": round(timings[-1], 2) if timings else None,
                "runs": len(timings),
            }
        )
    if conn is not None:
        conn.close()
    return results, errors


def run(events: int, *, repeats: int, formats: tuple[str, ...], log=print) -> dict:
    """Generate (or reuse) the ledger, start a daemon on it, time the dashboard's queries and the export."""
    started = time.perf_counter()
    data_dir, meta = cached_ledger(events, log=log)
    prepared = time.perf_counter() - started
    report: dict = {"ledger": meta, "prepare_seconds": round(prepared, 1), "errors": []}
    with tempfile.TemporaryDirectory(prefix="noor-dash-bench-") as tmp:
        config = Path(tmp) / "noor.toml"
        # Events keep the times they were generated with; no retention run may delete under the benchmark.
        config.write_text("[retention]\nusage_days = 36500\n")
        port = free_port()
        daemon = Process(
            "noor daemon (big ledger)",
            [sys.executable, "-m", "noor_daemon", "daemon", "--port", str(port), "--data-dir", str(data_dir),
             "--config", str(config), "--log-level", "warning"],
            port,
            env={"NOOR_ADMIN_TOKEN": BENCH_TOKEN},
        )
        try:
            report["daemon_listening_s"] = round(daemon.wait_until_listening(120), 3)
            time.sleep(0.5)  # the start-up tasks (retention, live seed) settle
            report["daemon_rss_mb"] = round(daemon.rss_mb() or 0, 1)
            queries, errors = time_queries(port, meta["export_account"], repeats)
            report["queries"] = queries
            report["errors"] += errors
            exports = {}
            for fmt in formats:
                pid = daemon.pid
                before = export_bench.memory_kb(pid)
                peak_reset = export_bench.reset_peak(pid)
                size, announced, seconds = asyncio.run(export_bench.download(daemon.url, meta["export_account"], fmt))
                after = export_bench.memory_kb(pid)
                exports[fmt] = {
                    "events": announced,
                    "bytes": size,
                    "seconds": round(seconds, 2),
                    "events_per_second": round(announced / seconds) if seconds else None,
                    "daemon_rss_before_mb": round(before["VmRSS"] / 1024, 1),
                    "daemon_rss_peak_mb": round(after["VmHWM"] / 1024, 1) if peak_reset else None,
                    "daemon_rss_after_mb": round(after["VmRSS"] / 1024, 1),
                }
                if announced != meta["export_events"]:
                    report["errors"].append(f"export {fmt}: {announced} events announced, {meta['export_events']} expected")
            report["export"] = exports
            if not daemon.alive():
                report["errors"].append(f"the daemon on the big ledger died: {daemon.log_tail()}")
        finally:
            daemon.stop()
    report["verify"] = verify_ledger(data_dir, meta["events"])
    if not report["verify"]["ok"]:
        report["errors"].append(f"noor ledger verify found {report['verify']['differences']} differences in the generated ledger")
    return report


def verify_ledger(data_dir: Path, events: int) -> dict:
    """`noor ledger verify` over the whole ledger (the daemon stopped): its time and events per second."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "noor_daemon", "ledger", "verify", "--data-dir", str(data_dir), "--json"],
        capture_output=True, text=True, timeout=1800,
    )
    seconds = time.perf_counter() - started
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError:
        doc = {"ok": False, "difference_count": None, "seconds": None}
    return {
        "ok": result.returncode == 0 and doc.get("ok", False),
        "differences": doc.get("difference_count"),
        "seconds": round(seconds, 1),
        "check_seconds": doc.get("seconds"),
        "events_per_second": round(events / doc["seconds"]) if doc.get("seconds") else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    report = run(args.events, repeats=args.repeats, formats=("json", "csv"), log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(report, indent=2))
    sys.exit(1 if report["errors"] else 0)


if __name__ == "__main__":
    main()
