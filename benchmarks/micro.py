"""In-process micro-benchmarks: the ledger writer's group commit, and usage extraction from a stream.

`python -m benchmarks.micro [--quick]` runs them alone; `python -m benchmarks` runs them as part
of the whole table.

- Ledger: `noor_daemon.ledger.sqlite.SqliteLedger` on a temp file (the same pragmas and schema as
  the daemon). A burst of N events enqueued at once, then W concurrent writers each awaiting
  `record()` in a loop for a fixed time, as W calls in flight would. Reports events committed
  per second, batches, and commit latency (enqueue to the resolution of its batch's future).
  Then a lone caller (concurrency 1: each call commits alone, the loop idle a moment in between):
  the CPU a call's commit costs the process, every thread counted, next to the bare SQLite
  transaction it runs (the INSERT in autocommit mode, on a connection of its own) — the floor of
  what a lone call pays for a row that survives `kill -9` before its answer ends.
- Usage extraction: the stand-in upstream's 25-event stream (with its usage chunk) fed
  through `EventSplitter` alone, then through `EventSplitter` and `ChatStreamMeter`: the
  difference is what reading usage out of a stream costs, per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.loadgen import percentile


def _events(count: int, now_ms: int) -> list:
    from noor_daemon.ledger.usage import UsageEvent

    rng = random.Random(7)
    models = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku")
    keys = [(f"acct_{i % 20:04d}", f"key_{i:04d}") for i in range(40)]
    out = []
    for i in range(count):
        account, key = keys[rng.randrange(len(keys))]
        out.append(
            UsageEvent(
                ts=now_ms - rng.randrange(3_600_000),
                model=models[i % 3],
                endpoint="chat/completions",
                status=200 if i % 50 else 429,
                latency_ms=100.0 + i % 300,
                account_id=account,
                key_id=key,
                provider="openai",
                prompt_tokens=100 + i % 500,
                completion_tokens=20 + i % 400,
                ttft_ms=50.0 + i % 60,
                stream=bool(i % 2),
            )
        )
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread: the writer's folds and checkpoints too
    return usage.ru_utime + usage.ru_stime


async def _lone_commits(ledger, pool: list, calls: int, pause: float = 0.0003) -> dict:
    """CPU µs per call of `ledger.record` for the only call in flight, and of the SQLite transaction alone,
    each over a loop that only pauses (what the harness itself costs), medians of 5 alternating rounds."""
    import sqlite3

    from noor_daemon.ledger.sqlite import SqliteLedger
    from noor_daemon.ledger.usage import INSERT_EVENT

    # The bare transactions go to a file of their own (same schema): in the ledger's they would be facts
    # its next fold must read back.
    scratch = SqliteLedger(ledger.path.with_name("bare.sqlite3"))
    await scratch.open()
    await scratch.close()
    bare = sqlite3.connect(scratch.path, isolation_level=None)
    bare.executescript("PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;")
    ledger.calls_in_flight = lambda: 1

    async def idle(event) -> None:
        pass

    async def transaction(event) -> None:
        bare.execute(INSERT_EVENT, event.row())  # autocommit: its own transaction

    samples: dict[str, list[float]] = {"idle": [], "record": [], "transaction": []}
    try:
        for _ in range(5):
            for name, step in (("idle", idle), ("record", ledger.record), ("transaction", transaction)):
                started = _cpu_seconds()
                for i in range(calls):
                    await step(pool[i % len(pool)])
                    await asyncio.sleep(pause)
                samples[name].append((_cpu_seconds() - started) / calls * 1e6)
    finally:
        bare.close()
        ledger.calls_in_flight = lambda: 0
    median = {name: sorted(values)[2] for name, values in samples.items()}
    return {
        "calls": calls * 5,
        "record_cpu_us": round(median["record"] - median["idle"], 1),
        "sqlite_transaction_cpu_us": round(median["transaction"] - median["idle"], 1),
    }


async def ledger_benchmark(
    burst: int, writers: int, seconds: float, directory: Path | None = None, lone_calls: int = 2000
) -> dict:
    from noor_daemon.ledger.sqlite import SqliteLedger

    with tempfile.TemporaryDirectory(prefix="noor-ledger-bench-", dir=directory) as tmp:
        ledger = SqliteLedger(Path(tmp) / "ledger.sqlite3")
        await ledger.open()
        try:
            now_ms = int(time.time() * 1000)
            pool = _events(max(burst, 20_000), now_ms)

            # 1. A burst: every event enqueued at once; the writer drains them in batches.
            latencies: list[float] = []
            batches_before = ledger.batches_committed
            started = time.perf_counter()
            # Events of one batch share its future: one callback per batch, not per event (200,000
            # callbacks cost the harness a quarter of the run), each event's latency counted from
            # the moment its batch's first event was enqueued (the burst is enqueued in ~0.1 s).
            batches: dict[asyncio.Future, list] = {}
            for event in pool[:burst]:
                future = ledger.enqueue(event)
                entry = batches.get(future)
                if entry is None:
                    batches[future] = entry = [time.perf_counter(), 0]
                    future.add_done_callback(
                        lambda _f, e=entry: latencies.extend([(time.perf_counter() - e[0]) * 1000] * e[1])
                    )
                entry[1] += 1
            await asyncio.gather(*batches)
            burst_seconds = time.perf_counter() - started
            burst_batches = ledger.batches_committed - batches_before

            # 2. Closed loop: `writers` callers, each awaiting its row's commit before the next.
            loop_latencies: list[float] = []
            committed_before = ledger.events_committed
            batches_before = ledger.batches_committed
            stop_at = time.perf_counter() + seconds

            async def writer(offset: int) -> None:
                i = offset
                while time.perf_counter() < stop_at:
                    event = pool[i % len(pool)]
                    i += writers
                    begin = time.perf_counter()
                    await ledger.record(event)
                    loop_latencies.append((time.perf_counter() - begin) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(writer(n) for n in range(writers)))
            loop_seconds = time.perf_counter() - started
            loop_events = ledger.events_committed - committed_before
            loop_batches = ledger.batches_committed - batches_before
            lone = await _lone_commits(ledger, pool, lone_calls)
        finally:
            await ledger.close()
    latencies.sort()
    loop_latencies.sort()
    return {
        "lone": lone,
        "burst": {
            "events": burst,
            "seconds": round(burst_seconds, 3),
            "events_per_second": round(burst / burst_seconds),
            "batches": burst_batches,
            "commit_p50_ms": round(percentile(latencies, 50, presorted=True), 2),
            "commit_p99_ms": round(percentile(latencies, 99, presorted=True), 2),
        },
        "closed_loop": {
            "writers": writers,
            "events": loop_events,
            "seconds": round(loop_seconds, 3),
            "events_per_second": round(loop_events / loop_seconds),
            "batches": loop_batches,
            "mean_batch": round(loop_events / loop_batches, 1) if loop_batches else None,
            "commit_p50_ms": round(percentile(loop_latencies, 50, presorted=True), 3),
            "commit_p99_ms": round(percentile(loop_latencies, 99, presorted=True), 3),
        },
    }


def extraction_benchmark(streams: int) -> dict:
    """Microseconds per stream to split the stand-in's stream into events, with and without the usage meter."""
    from benchmarks.upstream import _CHUNK, _USAGE, STREAM_EVENTS
    from noor_daemon.gateway.wire.openai import ChatStreamMeter
    from noor_daemon.gateway.wire.sse import EventSplitter

    chunks = [_CHUNK] * (STREAM_EVENTS - 1) + [_USAGE, b"data: [DONE]\n\n"]

    def split_only() -> None:
        splitter = EventSplitter()
        for chunk in chunks:
            for _event in splitter.feed(chunk):
                pass

    def split_and_meter() -> None:  # as the proxy does it: `relay` forwards quiet blocks whole
        splitter = EventSplitter()
        meter = ChatStreamMeter(False)
        held: list[bytes] = []
        for chunk in chunks:
            meter.relay(splitter.feed(chunk), held)
        assert meter.usage is not None and meter.usage.completion_tokens == 25

    def best_of(fn, rounds: int = 5) -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(streams):
                fn()
            best = min(best, (time.perf_counter() - started) / streams)
        return best * 1e6

    split_us = best_of(split_only)
    metered_us = best_of(split_and_meter)
    return {
        "events_per_stream": len(chunks),
        "split_us_per_stream": round(split_us, 2),
        "split_and_meter_us_per_stream": round(metered_us, 2),
        "usage_extraction_us_per_stream": round(metered_us - split_us, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    burst, seconds, lone = (20_000, 1.0, 300) if args.quick else (200_000, 5.0, 2000)
    report = {
        "ledger": asyncio.run(ledger_benchmark(burst, 256, seconds, lone_calls=lone)),
        "extraction": extraction_benchmark(2_000 if args.quick else 20_000),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
