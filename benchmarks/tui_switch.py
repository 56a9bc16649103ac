"""Tab switches and quitting the dashboard while `noor demo` runs: what a person waits for after pressing a key.

    python -m benchmarks.tui_switch [--repeats R]

The demo's daemon (`noor demo`: the simulator, a week of history, callers that keep sending mixed
traffic) runs on a background thread of this process, as `noor demo` runs it; the admin dashboard runs
headless in the foreground (Textual's `run_test`, 160x48, the live feed on) and, once the overview has
painted and calls are flowing, presses each screen's number in turn, twice over:

- switch (first visit): from `switch_mode` (what the number key does) to the first frame that shows the
  new screen with its data (the screen's `loaded`, then the refresh after it); the dashboard builds its
  screens while it idles once the overview has its data (`NoorApp.prepare_screens`), so the screen has
  usually been built (and has fetched) by then, and is laid out and painted for the first time; one
  not built yet is built on this visit, its fetch starting as it is built;
- switch (again): the same for a screen visited before (its last data paints at once, then it polls);
- quit: from the `q` key to the app's exit being complete (screens, workers, the live feed's stream
  and the HTTP session closed): the moment the shell prompt would come back. It includes Pilot's own
  wait after a key (`wait_for_idle`, until the process, the demo's daemon thread too, is idle for a
  moment; then every widget of the screen has handled its queue): 70-140 ms before Textual's
  shutdown starts.

Targets (issue #21): a switch within 100 ms, quitting within 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SIZE = (160, 48)
SWITCH_TARGET_MS = 100.0
QUIT_TARGET_MS = 300.0
TOKEN = "bench-demo-token"


async def wait_for(pilot, predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard did not get there in time")
        await pilot.pause(0.001)


async def painted_after_switch(app, pilot, mode: str) -> float:
    """Milliseconds from the switch to the first frame showing `mode`'s screen with its data."""
    marks: list[float] = []
    started = time.perf_counter()
    await app.switch_mode(mode)
    screen = app.screen
    await wait_for(pilot, lambda: screen.loaded)
    screen.call_after_refresh(lambda: marks.append(time.perf_counter()))
    await wait_for(pilot, lambda: marks)
    return (marks[0] - started) * 1000


async def one_session(url: str) -> tuple[dict[str, float], dict[str, float], float]:
    from noor_tui.app import AdminApp

    app = AdminApp(url, TOKEN)
    first: dict[str, float] = {}
    again: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded)
        received = app.feed.received
        await wait_for(pilot, lambda: app.feed.received > received + 3)  # the demo's calls are flowing
        await pilot.pause(0.5)
        modes = [mode for mode, _ in app.NAV]
        for mode in [*modes[1:], modes[0]]:
            first[mode] = await painted_after_switch(app, pilot, mode)
            await pilot.pause(0.3)
        for mode in [*modes[1:], modes[0]]:
            again[mode] = await painted_after_switch(app, pilot, mode)
            await pilot.pause(0.3)
        started = time.perf_counter()
        await pilot.press("q")
    quit_ms = (time.perf_counter() - started) * 1000
    return first, again, quit_ms


def summarize(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(ordered), 1), "max_ms": round(ordered[-1], 1), "runs": len(ordered)}


def run(repeats: int) -> dict:
    from noor_daemon.cli.demo_dashboard import DemoBackground

    with tempfile.TemporaryDirectory(prefix="noor-tui-switch-") as tmp:
        background = DemoBackground(Path(tmp) / "demo", TOKEN)
        url = background.start()
        try:
            sessions = [asyncio.run(one_session(url)) for _ in range(repeats)]
        finally:
            background.stop()
    first = {mode: summarize([s[0][mode] for s in sessions]) for mode in sessions[0][0]}
    again = {mode: summarize([s[1][mode] for s in sessions]) for mode in sessions[0][1]}
    quits = summarize([s[2] for s in sessions])
    worst_switch = max(stats["median_ms"] for stats in [*first.values(), *again.values()])
    return {
        "terminal": f"{SIZE[0]}x{SIZE[1]}",
        "first_visit": first,
        "again": again,
        "quit": quits,
        "worst_switch_median_ms": worst_switch,
        "within_target": worst_switch <= SWITCH_TARGET_MS and quits["median_ms"] <= QUIT_TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tui_switch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="Print the report as JSON only.")
    args = parser.parse_args()
    report = run(args.repeats)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"Dashboard on `noor demo` ({report['terminal']}, live feed on), median of {args.repeats} sessions (max):")
    for mode, stats in report["first_visit"].items():
        again = report["again"][mode]
        print(f"  press for {mode:<9} first visit {stats['median_ms']:6.1f} ms ({stats['max_ms']:.0f})"
              f"   again {again['median_ms']:6.1f} ms ({again['max_ms']:.0f})")
    print(f"  quit (q until the app has exited): {report['quit']['median_ms']:.1f} ms ({report['quit']['max_ms']:.0f})")
    print(f"  targets: switch <= {SWITCH_TARGET_MS:.0f} ms, quit <= {QUIT_TARGET_MS:.0f} ms: "
          f"{'met' if report['within_target'] else 'NOT met'}")
    sys.exit(0 if report["within_target"] else 1)


if __name__ == "__main__":
    main()
