"""`python -m benchmarks.syscalls [--calls N]`: system calls per call, the bare proxy next to the daemon, at c=1.

On a virtual machine a system call at concurrency 1 (caches cold between calls) costs microseconds, and
the lone call's CPU over the bare proxy's was mostly calls the bare proxy does not make. This starts the
stand-in upstream, the bare proxy and `noor daemon` (every limit on, the ledger on disk), attaches
`strace -c -f` (Debian's `strace`, not a dependency) to each in turn while the load generator sends N
calls one at a time, JSON then streamed, and prints each system call made at least once every 20 calls,
per call, with the total.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.__main__ import CHAT_JSON, CHAT_STREAM
from benchmarks.loadgen import LoadGenerator
from benchmarks.systems import (
    GENEROUS_PLAN,
    daemon_config,
    provision_key,
    start_bare_proxy,
    start_daemon,
    start_upstream,
)


def counts(summary: str) -> dict[str, int]:
    """`strace -c`'s table as {syscall: calls}."""
    table = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
            table[parts[-1]] = int(parts[3])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.syscalls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("benchmarks.syscalls needs strace (apt install strace)")
    tmp = Path(tempfile.mkdtemp(prefix="noor-syscalls-"))
    loadgen = LoadGenerator()
    upstream = start_upstream()
    upstream.wait_until_listening()
    bare = start_bare_proxy(upstream)
    daemon = start_daemon("noor", daemon_config(upstream, GENEROUS_PLAN), parent=tmp)
    try:
        bare.wait_until_listening(60)
        daemon.wait_until_listening(60)
        key = asyncio.run(provision_key(daemon))
        systems = (("bare proxy", bare, {}), ("noor", daemon, {"Authorization": f"Bearer {key}"}))
        for load, body in (("json", CHAT_JSON), ("stream", CHAT_STREAM)):
            for name, process, headers in systems:
                url = process.url + "/v1/chat/completions"
                loadgen.run(url, body, headers, concurrency=1, duration=1.0, warmup=0.5)
                out = tmp / f"{name}-{load}.txt"
                tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(process.pid)],
                                          stderr=subprocess.DEVNULL)
                time.sleep(1.0)  # attached to every thread
                result = loadgen.run(url, body, headers, concurrency=1, duration=600, warmup=0, max_requests=args.calls)
                tracer.send_signal(signal.SIGINT)
                tracer.wait()
                calls = result["requests"]
                table = counts(out.read_text())
                shown = {sc: n / calls for sc, n in table.items() if n / calls >= 0.05}
                print(f"{load:6} {name:10} {sum(table.values()) / calls:5.1f} a call: "
                      + ", ".join(f"{sc} {per:.2f}" for sc, per in sorted(shown.items(), key=lambda kv: -kv[1])))
    finally:
        for process in (daemon, bare, upstream):
            process.stop()
        loadgen.close()


if __name__ == "__main__":
    main()
