"""`python -m benchmarks [--quick] [--peers]`: NoorAPI's gateway measured in one run on one machine.

Everything runs on loopback as real processes: a fast stand-in upstream, the same upstream
behind a bare aiohttp pass-through proxy (the ceiling for a Python proxy), `noor daemon` with
auth, limits and metering on, the daemon with layers turned off (to price each one), and with
`--peers` LiteLLM's proxy. A closed-loop load generator in its own process drives each at fixed
concurrency for a fixed time after a warm-up. In the same run: the ledger writer's throughput,
usage extraction per stream, the daemon's memory idle, under load and after many calls, cold
start to the first served request, throughput with 1, 2 and 3 daemons sharing PostgreSQL, calls to a
provider that closes idle connections (no call may see it), the CPU of a call translated between API formats next to
a relayed one, and the dashboard's queries and an export over a generated ledger of 10,000,000 events.

Prints one report, writes benchmarks/results/latest.json and a chart of latency percentiles
(benchmarks/results/latency.svg, when matplotlib is installed: `pip install -e '.[bench]'`).
Timings are reported next to their targets, never asserted: the exit status is non-zero only
when something failed (a request, a process, a query).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from benchmarks import dashboard, micro, peers, report, scale_out, stale, translation
from benchmarks.loadgen import LoadGenerator
from benchmarks.systems import (
    GENEROUS_PLAN,
    UNLIMITED_PLAN,
    Process,
    daemon_config,
    first_ok,
    provision_data_dir,
    provision_key,
    start_bare_proxy,
    start_daemon,
    start_upstream,
)

RESULTS = Path(__file__).parent / "results"
CHAT_JSON = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say ok."}], "stream": False})
CHAT_STREAM = orjson.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "Say ok."}], "stream": True,
     "stream_options": {"include_usage": True}}
)
CHAT_STREAM_NO_USAGE = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say ok."}], "stream": True})
MESSAGES = orjson.dumps({"model": "bench-claude", "max_tokens": 64, "messages": [{"role": "user", "content": "Say ok."}]})
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


class Plan:
    """Durations and sizes of a run."""

    def __init__(self, quick: bool, args: argparse.Namespace) -> None:
        self.quick = quick
        self.warmup, self.duration = (0.2, 0.6) if quick else (2.0, 8.0)
        self.concurrencies = (1, 32) if quick else (1, 32, 256)
        self.layer_concurrency = 32
        self.layer_rounds = 1 if quick else 3
        self.layer_warmup, self.layer_duration = (self.warmup, self.duration) if quick else (1.0, 5.0)
        self.soak_calls = args.calls or (4_000 if quick else 1_000_000)
        self.soak_chunks = 4 if quick else 10
        self.cold_starts = 1 if quick else 5
        self.ledger_burst, self.ledger_seconds = (10_000, 0.6) if quick else (200_000, 5.0)
        self.extraction_streams = 500 if quick else 10_000
        self.events = args.events or (200_000 if quick else 10_000_000)
        self.query_repeats = 3 if quick else 10
        self.export_formats = ("json",) if quick else ("json", "csv")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, plan: Plan, with_peers: bool) -> None:
        self.plan = plan
        self.with_peers = with_peers
        self.processes: dict[str, Process] = {}
        self.keys: dict[str, str] = {}
        self.rows: list[dict] = []
        self.errors: list[str] = []
        self.served: dict[str, int] = {}
        self.loadgen: LoadGenerator | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="noor-bench-run-"))
        self.shm = Path(tempfile.mkdtemp(prefix="noor-bench-", dir="/dev/shm")) if Path("/dev/shm").is_dir() else None
        self.out: dict = {"errors": self.errors}

    # -- running load --------------------------------------------------------------------

    def target(self, system: str) -> tuple[Process, str, dict[str, str]]:
        process = self.processes[system]
        if system in ("direct", "bare proxy"):
            return process, process.url, {}
        if system == "litellm":
            return process, process.url, peers.headers()
        return process, process.url, {"Authorization": f"Bearer {self.keys[system]}"}

    def load(
        self, system: str, section: str, mode: str, concurrency: int, *, api: str = "chat", body: bytes | None = None,
        label: str | None = None, duration: float | None = None, warmup: float | None = None,
        max_requests: int | None = None, fatal: bool = True,
    ) -> dict:
        process, base, headers = self.target(system)
        path = "/v1/messages" if api == "messages" else "/v1/chat/completions"
        if api == "messages":
            headers = {**headers, **ANTHROPIC_HEADERS}
            if system not in ("direct", "bare proxy", "litellm"):
                headers = {"x-api-key": self.keys[system], **ANTHROPIC_HEADERS}
        body = body or (MESSAGES if api == "messages" else CHAT_STREAM if mode == "stream" else CHAT_JSON)
        upstream = self.processes["direct"]
        pids = [process.pid] + ([upstream.pid] if process is not upstream else [])
        result = self.loadgen.run(
            base + path, body, headers, concurrency=concurrency,
            duration=duration if duration is not None else self.plan.duration,
            warmup=warmup if warmup is not None else self.plan.warmup,
            max_requests=max_requests, cpu_pids=pids,
        )
        self.served[system] = self.served.get(system, 0) + result["total"]
        requests = result["requests"]
        cpu = result["cpu_s"]
        row = {
            "system": label or system,
            "process": system,
            "section": section,
            "api": api,
            "mode": mode,
            "concurrency": concurrency,
            "requests": requests,
            "errors": result["errors"],
            "statuses": result["statuses"],
            "seconds": round(result["seconds"], 3),
            "rps": round(requests / result["seconds"], 1) if result["seconds"] else 0.0,
            "latency_ms": _round_map(result["latency_ms"]),
            "ttft_ms": _round_map(result["ttft_ms"]) if result["ttft_ms"] else None,
            "cpu_ms_per_request": _per_request(cpu.get(str(process.pid)), requests),
            "upstream_cpu_ms_per_request": _per_request(cpu.get(str(upstream.pid)), requests)
            if process is not upstream else None,
            "loadgen_cpu_ms_per_request": _per_request(result["loadgen_cpu_s"], requests),
        }
        if not process.alive():
            self.errors.append(f"{system} died during {section} {mode} c={concurrency}: {process.log_tail(500)}")
        if fatal and (row["errors"] or not requests):
            self.errors.append(
                f"{row['system']} {api} {mode} c={concurrency}: {row['errors']} failed of {requests} ({row['statuses']})"
            )
        if section:
            self.rows.append(row)
        return row

    # -- the sections ----------------------------------------------------------------------

    def micro(self) -> None:
        log("ledger writer and usage extraction (in-process)…")
        try:
            self.out["ledger"] = asyncio.run(micro.ledger_benchmark(
                self.plan.ledger_burst, 256, self.plan.ledger_seconds, lone_calls=300 if self.plan.quick else 2000
            ))
            self.out["ledger"]["filesystem"] = "temp dir on " + _filesystem(Path(tempfile.gettempdir()))
        except Exception as exc:
            self.errors.append(f"ledger micro-benchmark failed: {type(exc).__name__}: {exc}")
        try:
            self.out["extraction"] = micro.extraction_benchmark(self.plan.extraction_streams)
        except Exception as exc:
            self.errors.append(f"usage extraction micro-benchmark failed: {type(exc).__name__}: {exc}")

    def start(self) -> None:
        log("starting the stand-in upstream, the bare proxy and the daemons…")
        self.loadgen = LoadGenerator()
        self.out["machine"]["loadgen_loop"] = self.loadgen.loop
        upstream = self.processes["direct"] = start_upstream()
        upstream.wait_until_listening()
        self.processes["bare proxy"] = start_bare_proxy(upstream)
        variants = {
            "noor": dict(plan=GENEROUS_PLAN),
            "noor, limits off": dict(plan=UNLIMITED_PLAN),
            "noor, metering off": dict(plan=GENEROUS_PLAN, module="benchmarks.nometer"),
            "noor, limits+metering off": dict(plan=UNLIMITED_PLAN, module="benchmarks.nometer"),
        }
        if self.shm is not None:
            variants["noor, ledger on tmpfs"] = dict(plan=GENEROUS_PLAN, parent=self.shm)
        for name, spec in variants.items():
            self.processes[name] = start_daemon(
                name, daemon_config(upstream, spec["plan"]), parent=spec.get("parent", self.tmp),
                module=spec.get("module", "noor_daemon"),
            )
        for name, process in self.processes.items():
            process.wait_until_listening(60)
        for name in variants:
            self.keys[name] = asyncio.run(provision_key(self.processes[name]))
        if self.with_peers:
            self.start_litellm()
        time.sleep(0.3)
        self.out["memory"] = {"idle_mb": _r1(self.processes["noor"].rss_mb())}
        if "litellm" in self.processes:
            self.out["memory"]["litellm_idle_mb"] = _r1(self.processes["litellm"].rss_mb())
        self.out["memory"]["bare_proxy_idle_mb"] = _r1(self.processes["bare proxy"].rss_mb())

    def start_litellm(self) -> None:
        info: dict = {"requirement": peers.REQUIREMENT}
        self.out["peers"] = {"litellm": info}
        try:
            cli, version = peers.ensure_litellm(log)
            info["version"] = version
            log(f"starting LiteLLM {version}…")
            process = self.processes["litellm"] = peers.start_litellm(cli, self.processes["direct"].url, self.tmp)
            info["cold_start_s"] = round(peers.wait_ready(process, CHAT_JSON), 3)
            info["status"] = "ok"
        except peers.PeerUnavailable as exc:
            info["status"] = "skipped"
            info["reason"] = str(exc)
            log(f"LiteLLM skipped: {exc}")
            process = self.processes.pop("litellm", None)
            if process is not None:
                process.stop()

    def matrix(self) -> None:
        systems = ["direct", "bare proxy", "noor"] + (["litellm"] if "litellm" in self.processes else [])
        for mode in ("json", "stream"):
            for concurrency in self.plan.concurrencies:
                log(f"{mode} c={concurrency}: {', '.join(systems)}")
                for system in systems:
                    self.load(system, "matrix", mode, concurrency, fatal=system != "litellm")
        self.out["memory"]["under_load_peak_mb"] = _r1(self.processes["noor"].peak_rss_mb())

    def compare(self, section: str, mode: str, variants: list[tuple[str, str, bytes | None]]) -> None:
        """Run the variants (system, label, body) in rounds, alternating their order, and keep for each
        the round with its median throughput: comparisons of a few percent need more than one sample
        on a shared machine."""
        c, rounds = self.plan.layer_concurrency, self.plan.layer_rounds
        samples: dict[str, list[dict]] = {label: [] for _, label, _ in variants}
        for n in range(rounds):
            for system, label, body in variants if n % 2 == 0 else variants[::-1]:
                samples[label].append(
                    self.load(system, "", mode, c, body=body, label=label,
                              duration=self.plan.layer_duration, warmup=self.plan.layer_warmup)
                )
        for _, label, _ in variants:
            ordered = sorted(samples[label], key=lambda row: row["rps"])
            row = dict(ordered[len(ordered) // 2], section=section)
            row["rps_rounds"] = [sample["rps"] for sample in samples[label]]
            self.rows.append(row)

    def layers(self) -> None:
        names = ["noor", "noor, limits off", "noor, metering off", "noor, limits+metering off"]
        if "noor, ledger on tmpfs" in self.processes:
            names.append("noor, ledger on tmpfs")
        for mode in ("json", "stream"):
            log(f"layers, {mode} c={self.plan.layer_concurrency}, {self.plan.layer_rounds} round(s): {'; '.join(names)}")
            self.compare("layers", mode, [(name, name, None) for name in names])
        log("usage extraction, stream: the client asks for usage, or not")
        self.compare(
            "usage", "stream",
            [("noor", "noor, client asks usage", None), ("noor", "noor, client does not ask usage", CHAT_STREAM_NO_USAGE)],
        )

    def anthropic(self) -> None:
        systems = ["direct", "bare proxy", "noor"] + (["litellm"] if "litellm" in self.processes else [])
        log(f"anthropic messages, json c=32: {', '.join(systems)}")
        for system in systems:
            self.load(system, "anthropic", "json", 32, api="messages", fatal=system != "litellm")

    def soak(self) -> None:
        total, chunks = self.plan.soak_calls, self.plan.soak_chunks
        log(f"memory: {total:,} calls at c=32 on noor (json and stream alternating), RSS after each {total // chunks:,}…")
        daemon = self.processes["noor"]
        checkpoints = []
        started = time.perf_counter()
        for i in range(chunks):
            mode = "stream" if i % 2 else "json"
            self.load("noor", "", mode, 32, duration=120 if self.plan.quick else 1200, warmup=0, max_requests=total // chunks)
            checkpoints.append({"calls": (i + 1) * (total // chunks), "rss_mb": _r1(daemon.rss_mb())})
        self.out["memory"]["soak"] = {
            "calls": total,
            "seconds": round(time.perf_counter() - started, 1),
            "checkpoints": checkpoints,
            "growth_mb": _r1(checkpoints[-1]["rss_mb"] - checkpoints[0]["rss_mb"]) if checkpoints else None,
            "served_before_soak": self.served.get("noor", 0) - total,
        }
        self.out["memory"]["after_calls_mb"] = checkpoints[-1]["rss_mb"] if checkpoints else None
        self.out["memory"]["peak_mb"] = _r1(daemon.peak_rss_mb())

    def cold_start(self) -> None:
        log("cold start: process start to the first 200 from /v1/chat/completions…")
        upstream = self.processes["direct"]
        data_dir = self.tmp / "cold-data"
        key = asyncio.run(provision_data_dir(data_dir))
        samples = []
        for _ in range(self.plan.cold_starts):
            process = start_daemon("noor (cold start)", daemon_config(upstream, GENEROUS_PLAN), data_dir=data_dir, parent=self.tmp)
            try:
                deadline = time.perf_counter() + 30
                ok = first_ok(process.port, "/v1/chat/completions", CHAT_JSON, {"Authorization": f"Bearer {key}"}, deadline)
                elapsed = time.perf_counter() - process.started_at
                if not ok:
                    self.errors.append(f"cold start: no 200 within 30s: {process.log_tail(500)}")
                    break
                samples.append(round(elapsed, 3))
            finally:
                process.stop()
        self.out["cold_start"] = {
            "noor_s": samples,
            "noor_median_s": round(statistics.median(samples), 3) if samples else None,
        }
        if "litellm" in self.processes:
            self.out["cold_start"]["litellm_s"] = self.out["peers"]["litellm"].get("cold_start_s")

    def scale_out(self) -> None:
        """1, 2 and 3 daemons on one PostgreSQL (benchmarks/scale_out.py)."""
        try:
            result = scale_out.run(
                self.loadgen, self.processes["direct"], CHAT_JSON, concurrency=32, warmup=self.plan.warmup,
                duration=self.plan.duration, parent=self.tmp, log=log,
            )
        except Exception as exc:
            self.errors.append(f"scale-out benchmark failed: {type(exc).__name__}: {exc}")
            return
        self.errors.extend(result.pop("errors", []))
        for row in result.get("rows", []):
            if row["errors"] or not row["requests"]:
                self.errors.append(f"scale-out, {row['daemons']} daemon(s): {row['errors']} failed ({row['statuses']})")
        self.out["scale_out"] = result

    def stale(self) -> None:
        """A provider closing idle connections after 0.5–2 s (benchmarks/stale.py): no call may see it."""
        calls = 200 if self.plan.quick else 1000
        log(f"stale connections: {calls:,} calls to a provider closing idle connections after 0.5–2 s…")
        try:
            result = stale.run(calls, parent=self.tmp)
        except Exception as exc:
            self.errors.append(f"stale-connection benchmark failed: {type(exc).__name__}: {exc}")
            return
        self.out["stale_connections"] = result
        if result["client_errors"] or result["breaker_failures"] or result["metered"] != result["calls"]:
            self.errors.append(f"stale connections: {stale.describe(result)}")

    def translation(self) -> None:
        """A translated call's CPU next to a relayed one's (benchmarks/translation.py)."""
        rounds, seconds = (1, self.plan.duration) if self.plan.quick else (3, 4.0)
        log(f"translation: relayed and translated calls, json and stream, {rounds} round(s)…")
        try:
            result = translation.run(self.loadgen, rounds=rounds, seconds=seconds, warmup=self.plan.warmup, parent=self.tmp, log=log)
        except Exception as exc:
            self.errors.append(f"translation benchmark failed: {type(exc).__name__}: {exc}")
            return
        self.errors.extend(result.pop("errors"))
        self.out["translation"] = result

    def stop_load_processes(self) -> None:
        for name, process in self.processes.items():
            if not process.alive() and name != "litellm":
                self.errors.append(f"{name} exited during the run ({process.popen.returncode}): {process.log_tail(500)}")
            process.stop()
        self.processes.clear()
        self.loadgen.close()

    def dashboard(self) -> None:
        log(f"dashboard queries and export over a ledger of {self.plan.events:,} events…")
        try:
            result = dashboard.run(
                self.plan.events, repeats=self.plan.query_repeats, formats=self.plan.export_formats, log=log
            )
        except Exception as exc:
            self.errors.append(f"dashboard benchmark failed: {type(exc).__name__}: {exc}")
            return
        self.errors.extend(result.pop("errors"))
        self.out["dashboard"] = result

    def run(self) -> dict:
        started = time.perf_counter()
        self.out["machine"] = machine()
        try:
            timings = self.out["section_seconds"] = {}
            for name, section in (
                ("micro", self.micro), ("start", self.start), ("matrix", self.matrix), ("layers", self.layers),
                ("anthropic", self.anthropic), ("soak", self.soak), ("cold_start", self.cold_start), ("scale_out", self.scale_out),
                ("stale", self.stale), ("translation", self.translation),
                ("stop", self.stop_load_processes), ("dashboard", self.dashboard),
            ):
                begun = time.perf_counter()
                section()
                timings[name] = round(time.perf_counter() - begun, 1)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            for process in self.processes.values():
                process.stop()
            if self.loadgen is not None:
                self.loadgen.close()
            _rmtree(self.tmp)
            if self.shm is not None:
                _rmtree(self.shm)
        self.out["machine"]["load_average_end"] = _loadavg()
        self.out["rows"] = self.rows
        self.out["seconds"] = round(time.perf_counter() - started, 1)
        return self.out


def _per_request(seconds: float | None, requests: int) -> float | None:
    return round(seconds * 1000 / requests, 4) if seconds is not None and requests else None


def _round_map(values: dict | None) -> dict | None:
    return {q: (round(v, 3) if v is not None else None) for q, v in values.items()} if values else None


def _r1(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def _filesystem(path: Path) -> str:
    try:
        best = ("", "?")
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            if str(path.resolve()).startswith(mount) and len(mount) > len(best[0]):
                best = (mount, fstype)
        return f"{best[1]} ({best[0]})"
    except OSError:
        return "?"


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        mem_gb = None
    try:
        import uvloop  # noqa: F401

        has_uvloop = True
    except ImportError:
        has_uvloop = False
    import aiohttp

    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
        "uvloop_installed": has_uvloop,
        "load_average_start": _loadavg(),
    }


def main() -> None:
    # `timeout` or a CI runner stopping us: unwind through the finally blocks that stop every process.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (under a minute); figures are rough")
    parser.add_argument("--peers", action="store_true", help="also LiteLLM's proxy (installed once into a cached venv)")
    parser.add_argument("--events", type=int, default=None, help="events in the dashboard's ledger (10,000,000; quick 200,000)")
    parser.add_argument("--calls", type=int, default=None, help="calls in the memory soak (1,000,000; quick 10,000)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="where the JSON report goes")
    args = parser.parse_args()
    plan = Plan(args.quick, args)
    bench = Bench(plan, args.peers)
    result = bench.run()
    result.update(
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        mode="quick" if args.quick else "full",
        plan={
            "warmup_s": plan.warmup, "duration_s": plan.duration, "concurrencies": list(plan.concurrencies),
            "soak_calls": plan.soak_calls, "ledger_events": plan.events,
        },
    )
    result["targets"] = report.targets(result)
    report.print_report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    chart = report.chart(result, args.output.with_name("latency.svg"))
    print(f"\nwrote {args.output}" + (f" and {chart}" if chart else " (no chart: matplotlib is not installed; pip install -e '.[bench]')"))
    if result["errors"]:
        print(f"\n{len(result['errors'])} error(s):", file=sys.stderr)
        for error in result["errors"]:
            print(f"  - {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
