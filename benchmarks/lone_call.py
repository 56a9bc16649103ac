"""`python -m benchmarks.lone_call [--rounds N] [--stream]`: what a call at concurrency 1 costs, layer by layer.

Issue #23's hardest target is the lone call's CPU against the bare proxy's. This starts the stand-in upstream,
the bare proxy and four daemons — as shipped (every limit on, the ledger on disk), with metering stubbed
(`benchmarks.nometer`: no row, no commit, no listeners), with only the lone call's SQLite INSERT left out
(`NOOR_BENCH_STUB=insert`) and with a plan without limits — and loads each in turn
at c=1, in alternating order for N rounds. It prints each system's CPU per call (user and system time from /proc,
and the daemon's loop thread apart from its other threads) and its ratio to the bare proxy's: the difference
between the daemon and a variant is what that layer costs a lone call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.__main__ import CHAT_JSON, CHAT_STREAM
from benchmarks.loadgen import LoadGenerator
from benchmarks.systems import (
    GENEROUS_PLAN,
    UNLIMITED_PLAN,
    Process,
    daemon_config,
    provision_key,
    start_bare_proxy,
    start_daemon,
    start_upstream,
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lone_call", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per load (after 1 s warm-up)")
    parser.add_argument("--stream", action="store_true", help="streamed chat completions instead of JSON")
    args = parser.parse_args()
    body = CHAT_STREAM if args.stream else CHAT_JSON
    parent = Path(tempfile.mkdtemp(prefix="noor-lone-"))
    upstream = start_upstream()
    systems: dict[str, Process] = {}
    loadgen = LoadGenerator()
    try:
        upstream.wait_until_listening()
        config = daemon_config(upstream, GENEROUS_PLAN)
        systems["bare proxy"] = start_bare_proxy(upstream)
        systems["noor"] = start_daemon("noor", config, parent=parent)
        systems["noor, metering stubbed"] = start_daemon("nometer", config, parent=parent, module="benchmarks.nometer")
        os.environ["NOOR_BENCH_STUB"] = "insert"  # the child's environment is copied at its start
        systems["noor, INSERT stubbed"] = start_daemon("noinsert", config, parent=parent, module="benchmarks.nometer")
        del os.environ["NOOR_BENCH_STUB"]
        systems["noor, no limits"] = start_daemon("unlimited", daemon_config(upstream, UNLIMITED_PLAN), parent=parent)
        headers: dict[str, dict[str, str]] = {}
        for name, process in systems.items():
            process.wait_until_listening(60)
            key = "bare" if name == "bare proxy" else asyncio.run(provision_key(process))
            headers[name] = {"Authorization": f"Bearer {key}"}
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
        for n in range(args.rounds):
            order = list(systems.items())
            for name, process in order if n % 2 == 0 else order[::-1]:
                result = loadgen.run(process.url + "/v1/chat/completions", body, headers[name], concurrency=1,
                                     duration=args.seconds, warmup=1.0, cpu_pids=[process.pid])
                split = result["cpu_split_s"][str(process.pid)]
                if result["errors"] or not result["requests"] or split is None:
                    raise SystemExit(f"{name}: {result['errors']} errors {result['statuses']}")
                calls = result["requests"]
                samples[name].append({k: 1e6 * v / calls for k, v in split.items()})
                print(f"round {n + 1} {name}: {1e6 * result['cpu_s'][str(process.pid)] / calls:.0f} µs a call", flush=True)
        bare = statistics.median(s["user"] + s["system"] for s in samples["bare proxy"])
        mode = "streamed" if args.stream else "JSON"
        print(f"\nc=1 {mode} calls, medians of {args.rounds} rounds of {args.seconds:g} s: CPU µs a call (the process's"
              " user + system; of which its main thread, the event loop's)")
        print(f"{'system':26} {'CPU':>7} {'user':>7} {'system':>7} {'loop':>7} {'x bare':>7}")
        for name, rows in samples.items():
            total = statistics.median(s["user"] + s["system"] for s in rows)
            user = statistics.median(s["user"] for s in rows)
            system = statistics.median(s["system"] for s in rows)
            loop = statistics.median(s["main_thread"] for s in rows)
            print(f"{name:26} {total:7.0f} {user:7.0f} {system:7.0f} {loop:7.0f} {total / bare:7.2f}")
    finally:
        loadgen.close()
        for process in [*systems.values(), upstream]:
            process.stop()


if __name__ == "__main__":
    main()
