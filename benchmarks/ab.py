"""`python -m benchmarks.ab --baseline REV`: the daemon of a git revision against the working tree.

"Measure before and after each change" on a shared 2-core machine needs both sides in the same
minutes: a full run takes half an hour and the machine's load moves more than most changes do.
This starts one stand-in upstream, the bare proxy, a `noor daemon` from a worktree of `REV` and
one from this checkout (every limit on, the ledger on disk), and loads them in alternating
rounds (A B, B A, ...) at each load given, printing the medians: requests/s, CPU ms per request
(from /proc), p50/p99 latency, and the ratio to the bare proxy measured in the same round.

`--telemetry` and `--budgets` run the same code on both sides and change B's config only (OpenTelemetry on;
day and month budgets on top of the token quotas), printing what that costs B in CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.__main__ import CHAT_JSON, CHAT_STREAM
from benchmarks.loadgen import LoadGenerator
from benchmarks.systems import (
    BENCH_PRICES,
    GENEROUS_BUDGETS,
    GENEROUS_PLAN,
    ROOT,
    Process,
    daemon_config,
    free_port,
    provision_key,
    start_bare_proxy,
    start_daemon,
    start_upstream,
)

LOADS = {"json32": (CHAT_JSON, 32), "stream32": (CHAT_STREAM, 32), "json1": (CHAT_JSON, 1), "stream1": (CHAT_STREAM, 1)}


def worktree(rev: str, parent: Path) -> Path:
    path = parent / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare with (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per load (after 1 s warm-up)")
    parser.add_argument("--loads", default="json32,stream32,json1", help=f"comma-separated, of {', '.join(LOADS)}")
    parser.add_argument("--telemetry", action="store_true",
                        help="B exports OpenTelemetry (traces of every call and metrics) to a local OTLP sink; A does not")
    parser.add_argument("--budgets", action="store_true",
                        help="B's plan has day and month budgets besides its token quotas; A's has the quotas alone "
                             "(both price the model, so both compute each call's cost)")
    parser.add_argument("--sample-ratio", type=float, default=1.0, help="with --telemetry: [telemetry] sample_ratio (default 1.0)")
    args = parser.parse_args()
    loads = [name.strip() for name in args.loads.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="noor-ab-"))
    tree = worktree(args.baseline, tmp)
    processes: dict[str, Process] = {}
    loadgen = LoadGenerator()
    try:
        upstream = processes["upstream"] = start_upstream()
        upstream.wait_until_listening()
        processes["bare"] = start_bare_proxy(upstream)
        config = daemon_config(upstream, GENEROUS_PLAN, extra=BENCH_PRICES if args.budgets else "")
        config_b = config
        if args.budgets:  # what budgets cost a call over token quotas alone: never reached, always checked
            config_b = daemon_config(upstream, GENEROUS_PLAN + "\n" + GENEROUS_BUDGETS, extra=BENCH_PRICES)
        if args.telemetry:  # what OpenTelemetry on costs a call: the same code with and without [telemetry]
            sink_port = free_port()
            processes["sink"] = Process("otlp sink", [sys.executable, "-m", "benchmarks.otlp_sink", "--port", str(sink_port)], sink_port)
            config_b += (f'\n[telemetry]\nendpoint = "http://127.0.0.1:{sink_port}"\nexport_interval = 5\n'
                         f"sample_ratio = {args.sample_ratio}\n")
        processes["A"] = start_daemon("A", config, parent=tmp, code=tree)
        processes["B"] = start_daemon("B", config_b, parent=tmp)
        keys = {}
        for name in ("bare", "A", "B"):
            processes[name].wait_until_listening(60)
        for name in ("A", "B"):
            keys[name] = asyncio.run(provision_key(processes[name]))
        results: dict[tuple[str, str], list[dict]] = {}
        for n in range(args.rounds):
            for load in loads:
                body, concurrency = LOADS[load]
                order = ["bare", "A", "B"] if n % 2 == 0 else ["B", "A", "bare"]
                for name in order:
                    process = processes[name]
                    headers = {"Authorization": f"Bearer {keys[name]}"} if name in keys else {}
                    result = loadgen.run(process.url + "/v1/chat/completions", body, headers, concurrency=concurrency,
                                         duration=args.seconds, warmup=1.0, cpu_pids=[process.pid])
                    if result["errors"]:
                        raise SystemExit(f"{name} {load}: {result['errors']} errors {result['statuses']}")
                    seconds, requests = result["seconds"], result["requests"]
                    results.setdefault((load, name), []).append({
                        "rps": requests / seconds,
                        "cpu": 1000 * result["cpu_s"][str(process.pid)] / requests,
                        "p50": result["latency_ms"]["50"], "p99": result["latency_ms"]["99"],
                    })
                print(f"round {n + 1} {load}: " + "  ".join(
                    f"{name} {results[(load, name)][-1]['rps']:,.0f}/s {results[(load, name)][-1]['cpu']:.3f}ms"
                    for name in ("bare", "A", "B")), file=sys.stderr, flush=True)
        b_is = "working tree" + (f" with [telemetry] on (sample_ratio {args.sample_ratio:g})" if args.telemetry else "") + (
            " with budgets" if args.budgets else "")
        print(f"\nA = {args.baseline}, B = {b_is}; medians of {args.rounds} rounds of {args.seconds:g} s")
        print(f"{'load':10} {'sys':5} {'req/s':>8} {'x bare':>7} {'cpu ms':>7} {'p50':>7} {'p99':>7}")
        for load in loads:
            for name in ("bare", "A", "B"):
                rows = results[(load, name)]
                median = {field: statistics.median(r[field] for r in rows) for field in rows[0]}
                ratio = statistics.median(r["rps"] / b["rps"] for r, b in zip(rows, results[(load, "bare")]))
                print(f"{load:10} {name:5} {median['rps']:8,.0f} {ratio:7.2f} {median['cpu']:7.3f} "
                      f"{median['p50']:7.2f} {median['p99']:7.2f}")
            # Paired by round (A and B loaded in the same minute): steadier than the ratio of two medians.
            extra = statistics.median(b["cpu"] / a["cpu"] - 1 for a, b in zip(results[(load, "A")], results[(load, "B")]))
            print(f"{load:10} B's CPU per call over A's: {extra:+.1%} (median of the rounds' ratios)")
    finally:
        loadgen.close()
        for process in processes.values():
            process.stop()
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
