"""`python -m benchmarks.translation`: the CPU a translated call costs the daemon, next to a relayed one.

One stand-in upstream (benchmarks/upstream.py: Chat Completions and Messages, 25-event streams, with usage) and
one `noor daemon` (every limit on, the ledger on disk). The same provider answers each pair of loads, once
relayed (the caller's format is the provider's) and once translated (the caller speaks the other one):

    chat → chat        vs   messages → chat      (Claude Code on a GPT or a local model)
    messages → messages vs  chat → messages      (an OpenAI SDK on Claude)

each as a whole answer and as a stream, at concurrency 32, in alternating rounds. It prints the daemon's CPU
milliseconds per call (from /proc) for both and their ratio; the target is at most 1.25 (translation adds at
most 25 % CPU per call). `python -m benchmarks` runs it as one of its sections.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

from benchmarks.loadgen import LoadGenerator
from benchmarks.systems import GENEROUS_PLAN, daemon_config, provision_key, start_daemon, start_upstream

TARGET_RATIO = 1.25

_CHAT = {"messages": [{"role": "user", "content": "Say ok."}]}
_MESSAGES = {"max_tokens": 64, "messages": [{"role": "user", "content": "Say ok."}]}


def _body(shape: dict, model: str, stream: bool) -> bytes:
    extra = {"stream": True} if stream else {}
    if stream and "max_tokens" not in shape:
        extra["stream_options"] = {"include_usage": True}
    return orjson.dumps({"model": model, **shape, **extra})


PAIRS = [
    # (label, provider format, relayed (path, body), translated (path, body))
    ("to a chat provider", "chat", ("/v1/chat/completions", _CHAT, "bench"), ("/v1/messages", _MESSAGES, "bench")),
    ("to a messages provider", "messages", ("/v1/messages", _MESSAGES, "bench-claude"), ("/v1/chat/completions", _CHAT, "bench-claude")),
]


def run(loadgen: LoadGenerator, *, rounds: int, seconds: float, warmup: float, parent: Path, log=print) -> dict:
    """CPU ms per call, relayed and translated, for each pair and mode; medians of `rounds` alternating rounds."""
    upstream = start_upstream()
    daemon = start_daemon("noor (translation)", daemon_config(upstream, GENEROUS_PLAN), parent=parent)
    try:
        upstream.wait_until_listening()
        daemon.wait_until_listening(60)
        key = asyncio.run(provision_key(daemon))
        rows = []
        errors: list[str] = []
        for label, provider, relayed, translated in PAIRS:
            for stream in (False, True):
                samples: dict[str, list[float]] = {"relayed": [], "translated": []}
                for n in range(rounds):
                    order = [("relayed", relayed), ("translated", translated)]
                    for how, (path, shape, model) in order if n % 2 == 0 else order[::-1]:
                        headers = {"Authorization": f"Bearer {key}"}
                        if path == "/v1/messages":
                            headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
                        result = loadgen.run(daemon.url + path, _body(shape, model, stream), headers, concurrency=32,
                                             duration=seconds, warmup=warmup, cpu_pids=[daemon.pid])
                        if result["errors"] or not result["requests"]:
                            errors.append(f"translation {label} {how} stream={stream}: {result['errors']} errors {result['statuses']}")
                            continue
                        samples[how].append(1000 * result["cpu_s"][str(daemon.pid)] / result["requests"])
                if not samples["relayed"] or not samples["translated"]:
                    continue
                row = {
                    "pair": label, "provider": provider, "mode": "stream" if stream else "json",
                    "relayed": {"path": relayed[0], "cpu_ms": round(statistics.median(samples["relayed"]), 4)},
                    "translated": {"path": translated[0], "cpu_ms": round(statistics.median(samples["translated"]), 4)},
                }
                row["ratio"] = round(row["translated"]["cpu_ms"] / row["relayed"]["cpu_ms"], 3)
                rows.append(row)
                log(f"translation {label}, {row['mode']}: relayed {row['relayed']['cpu_ms']:.3f} ms, "
                    f"translated {row['translated']['cpu_ms']:.3f} ms, x{row['ratio']:.2f}")
        return {"rows": rows, "errors": errors, "target_ratio": TARGET_RATIO, "rounds": rounds, "seconds": seconds}
    finally:
        daemon.stop()
        upstream.stop()


def print_table(result: dict) -> None:
    print(f"\ntranslation: the daemon's CPU per call, relayed vs translated (c=32, medians of {result['rounds']} rounds; "
          f"target ≤ {result['target_ratio']:.2f}x)")
    print(f"  {'provider':<24} {'mode':<7} {'relayed':>22} {'translated':>27} {'ratio':>7}")
    for row in result["rows"]:
        relayed = f"{row['relayed']['path']} {row['relayed']['cpu_ms']:.3f} ms"
        translated = f"{row['translated']['path']} {row['translated']['cpu_ms']:.3f} ms"
        mark = "✓" if row["ratio"] <= result["target_ratio"] else "✗"
        print(f"  {row['pair']:<24} {row['mode']:<7} {relayed:>22} {translated:>27} {row['ratio']:>6.2f}x {mark}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.translation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per load (after the warm-up)")
    args = parser.parse_args()
    loadgen = LoadGenerator()
    with tempfile.TemporaryDirectory(prefix="noor-translation-") as tmp:
        try:
            result = run(loadgen, rounds=args.rounds, seconds=args.seconds, warmup=1.0, parent=Path(tmp),
                         log=lambda line: print(line, file=sys.stderr, flush=True))
        finally:
            loadgen.close()
    print_table(result)
    if result["errors"]:
        for error in result["errors"]:
            print(f"  - {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
