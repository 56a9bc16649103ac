"""`python -m benchmarks.flamegraph [--seconds N] [--output PATH]`: where the daemon's CPU goes on the request path.

The full benchmark's setup for its headline row: the stand-in upstream, `noor daemon` with every
limit on (none reached) and the ledger on disk, one key, and the load generator driving
non-streaming chat completions at concurrency 32. py-spy (`pip install py-spy`; not a dependency)
samples the daemon (every thread; time spent waiting is left out) for N seconds after a warm-up,
writes an SVG flame graph (docs/flamegraph-request-path.svg by default), and prints where the
samples went: by area (from each sample's innermost frame) and the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.__main__ import CHAT_JSON, CHAT_STREAM
from benchmarks.loadgen import LoadGenerator
from benchmarks.systems import (
    BENCH_PRICES,
    GENEROUS_BUDGETS,
    GENEROUS_PLAN,
    Process,
    daemon_config,
    free_port,
    provision_key,
    start_daemon,
    start_upstream,
)

ROOT = Path(__file__).resolve().parent.parent


def _read(collapsed: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        stacks.append((stack.split(";"), int(n)))
    return stacks


_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def _split(frame: str) -> tuple[str, str]:
    """(function, file) of py-spy's `name (file:line)` or `name (file)`."""
    match = _FRAME.match(frame)
    return (match["name"], match["file"]) if match else (frame, "")


def _function(frame: str) -> str:
    """`name (file)`: one row per function, not per line of it."""
    name, where = _split(frame)
    return f"{name} ({where})" if where else name


_OURS = {path.name for path in (ROOT / "noor_daemon").rglob("*.py")}


def _area(stack: list[str]) -> str:
    """Where a sample's time went, by its innermost frame (py-spy shortens some paths to the file name)."""
    if any("write_batch" in frame or "_checkpoint_passive" in frame for frame in stack):
        return "ledger batch commit (SQLite inserts, rollup upserts, WAL checkpoints)"
    name, where = _split(stack[-1])
    if name in ("run_app", "run_until_complete", "run_forever"):
        return "event loop itself (uvloop, native: sockets, timers, callbacks)"
    if "concurrent/futures" in where or "aiosqlite/" in where or "threading.py" in where:
        return "thread handoffs (executor and aiosqlite threads waking)"
    if where.endswith("http1.py") or where.startswith("httptools/") or where.startswith("aiohttp/client") \
            or where.startswith("aiohttp/connector"):
        return "upstream client (gateway/http1.py: the upstream call, its socket write and parsing)"
    if where.startswith("noor_daemon/") or where in _OURS:
        return "NoorAPI's own code (auth, limits, routing, metering, listeners)"
    if where.startswith("aiohttp/"):
        return "aiohttp server and HTTP writer"
    if where.startswith("asyncio/"):
        return "asyncio (tasks, futures, timers)"
    return "other libraries (yarl, multidict, orjson, sqlite3, …)"


def summary(collapsed: Path, count: int = 15) -> tuple[int, list[tuple[str, float]], list[tuple[str, float, float]]]:
    """(samples, [(area, share)], [(function, own share, share with callees)]) from py-spy's collapsed stacks."""
    stacks = _read(collapsed)
    samples = sum(n for _, n in stacks)
    areas: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        areas[_area(frames)] += n
        functions = [_function(f) for f in frames]
        own[functions[-1]] += n
        for function in set(functions):
            total[function] += n
    return (
        samples,
        [(area, n / samples) for area, n in areas.most_common()],
        [(f, own[f] / samples, total[f] / samples) for f, _ in own.most_common(count)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flamegraph", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "flamegraph-request-path.svg")
    parser.add_argument("--stacks", type=Path, help="also keep the collapsed stacks here (for your own grep)")
    parser.add_argument("--stream", action="store_true", help="streamed chat completions instead of JSON")
    parser.add_argument("--telemetry", action="store_true", help="with [telemetry] on, exporting to a local OTLP sink")
    parser.add_argument("--budgets", action="store_true", help="the plan has day and month budgets (never reached) and the model a price")
    parser.add_argument("--prices", action="store_true",
                        help="the model has a price (each call's cost computed), no budgets: what --budgets adds to, as benchmarks.ab --budgets compares")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        sys.exit("py-spy is not installed: pip install py-spy")
    upstream = start_upstream()
    daemon = sink = None
    loadgen = None
    try:
        upstream.wait_until_listening(30)
        config = (daemon_config(upstream, GENEROUS_PLAN + "\n" + GENEROUS_BUDGETS, extra=BENCH_PRICES) if args.budgets
                  else daemon_config(upstream, GENEROUS_PLAN, extra=BENCH_PRICES if args.prices else ""))
        if args.telemetry:
            sink_port = free_port()
            sink = Process("otlp sink", [sys.executable, "-m", "benchmarks.otlp_sink", "--port", str(sink_port)], sink_port)
            config += f'\n[telemetry]\nendpoint = "http://127.0.0.1:{sink_port}"\nexport_interval = 5\n'
        daemon = start_daemon("noor", config)
        daemon.wait_until_listening(60)
        key = asyncio.run(provision_key(daemon))
        loadgen = LoadGenerator()
        url, headers = daemon.url + "/v1/chat/completions", {"Authorization": f"Bearer {key}"}
        body = CHAT_STREAM if args.stream else CHAT_JSON
        loadgen.run(url, body, headers, concurrency=args.concurrency, duration=3.0, warmup=1.0)  # warm-up
        args.output.parent.mkdir(parents=True, exist_ok=True)
        collapsed = Path(tempfile.mkdtemp(prefix="noor-flame-")) / "stacks.txt"
        # Two samplers over the same seconds: py-spy writes one format per recording (the SVG, and the
        # collapsed stacks the summary is computed from). Non-blocking: the daemon is never paused.
        common = [py_spy, "record", "--pid", str(daemon.pid), "--duration", str(int(args.seconds)), "--rate", "200",
                  "--nonblocking", "--nolineno"]
        recorders = [
            subprocess.Popen(common + ["--format", fmt, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for fmt, out in (("flamegraph", args.output), ("raw", collapsed))
        ]
        time.sleep(1.0)  # attached before the load starts
        result = loadgen.run(url, body, headers, concurrency=args.concurrency, duration=args.seconds - 2, warmup=0.0,
                             cpu_pids=[daemon.pid])
        for recorder in recorders:
            recorder.wait()
        print(f"{result['requests']:,} requests at c={args.concurrency} in {args.seconds - 2:.0f} s "
              f"({result['requests'] / (args.seconds - 2):,.0f}/s), daemon CPU {(result['cpu_s'][str(daemon.pid)] or 0) * 1000 / max(result['requests'], 1):.3f} ms/request")
        samples, areas, frames = summary(collapsed)
        if args.stacks is not None:
            shutil.copyfile(collapsed, args.stacks)
        shutil.rmtree(collapsed.parent, ignore_errors=True)
        print(f"{args.output} ({samples:,} samples). Where the time went, by innermost frame:")
        for area, share in areas:
            print(f"  {share:6.1%}  {area}")
        print("Top functions by own share (own / with callees):")
        for frame, own, total in frames:
            print(f"  {own:6.1%} {total:6.1%}  {frame}")
    finally:
        if loadgen is not None:
            loadgen.close()
        for process in (daemon, upstream, sink):
            if process is not None:
                process.stop()


if __name__ == "__main__":
    main()
