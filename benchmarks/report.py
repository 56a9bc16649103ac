"""The printed report, the targets of issue #8 with ✓/✗, and the chart of latency percentiles."""

from __future__ import annotations

import math
from pathlib import Path

TICK, CROSS, NA = "✓", "✗", "–"


def find(result: dict, system: str, mode: str, concurrency: int, *, section: str = "matrix", api: str = "chat") -> dict | None:
    for row in result.get("rows", []):
        if (row["section"], row["system"], row["api"], row["mode"], row["concurrency"]) == (section, system, api, mode, concurrency):
            return row
    return None


def _lat(row: dict | None, q: str, field: str = "latency_ms") -> float | None:
    if row is None or not row.get(field):
        return None
    return row[field].get(q)


def _sub(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _f(value: float | None, fmt: str = ".2f", width: int = 0) -> str:
    text = "–" if value is None else format(value, fmt)
    return text.rjust(width) if width else text


# -- targets --------------------------------------------------------------------------------


def targets(result: dict) -> list[dict]:
    out: list[dict] = []

    def add(name: str, target: str, measured: float | None, ok: bool | None, shown: str, note: str = "") -> None:
        out.append({"target": name, "goal": target, "measured": measured, "shown": shown, "met": ok, "note": note})

    def at_most(name, goal, value, limit, fmt, unit="", note=""):
        add(name, goal, value, None if value is None else value <= limit, _f(value, fmt) + unit, note)

    def at_least(name, goal, value, limit, fmt, unit="", note=""):
        add(name, goal, value, None if value is None else value >= limit, _f(value, fmt) + unit, note)

    for mode in ("json", "stream"):
        noor, bare = find(result, "noor", mode, 32), find(result, "bare proxy", mode, 32)
        at_least(f"throughput c=32 {mode} vs bare proxy", "≥ 0.85x", _ratio(noor and noor["rps"], bare and bare["rps"]), 0.85, ".2f", "x")
    cpu_json = find(result, "noor", "json", 32)
    cpu_stream = find(result, "noor", "stream", 32)
    at_most("CPU per request, json (c=32)", "≤ 0.2 ms", cpu_json and cpu_json["cpu_ms_per_request"], 0.2, ".3f", " ms")
    at_most("CPU per request, 25-event stream (c=32)", "≤ 0.35 ms", cpu_stream and cpu_stream["cpu_ms_per_request"], 0.35, ".3f", " ms")
    direct1, noor1 = find(result, "direct", "json", 1), find(result, "noor", "json", 1)
    at_most("added latency c=1 p50", "≤ 0.6 ms", _sub(_lat(noor1, "50"), _lat(direct1, "50")), 0.6, "+.3f", " ms")
    at_most("added latency c=1 p99", "≤ 1.5 ms", _sub(_lat(noor1, "99"), _lat(direct1, "99")), 1.5, "+.3f", " ms")
    sdirect1, snoor1 = find(result, "direct", "stream", 1), find(result, "noor", "stream", 1)
    at_most(
        "added time to first token c=1 p50", "≤ 0.6 ms",
        _sub(_lat(snoor1, "50", "ttft_ms"), _lat(sdirect1, "50", "ttft_ms")), 0.6, "+.3f", " ms",
    )
    for mode in ("json", "stream"):
        on = find(result, "noor", mode, 32, section="layers")
        off = find(result, "noor, limits+metering off", mode, 32, section="layers")
        ratio = _ratio(on and on["rps"], off and off["rps"])
        cost = None if ratio is None else 1 - ratio
        at_most(f"limits+metering throughput cost, {mode} c=32", "≤ 10%", None if cost is None else cost * 100, 10, "+.1f", "%")
    ledger = result.get("ledger", {}).get("burst", {})
    at_least("ledger events committed per second", "≥ 50,000", ledger.get("events_per_second"), 50_000, ",.0f")
    memory = result.get("memory", {})
    at_most("RSS idle", "≤ 80 MB", memory.get("idle_mb"), 80, ".1f", " MB")
    peak = memory.get("peak_mb") or memory.get("under_load_peak_mb")
    at_most("RSS under load (peak)", "≤ 150 MB", peak, 150, ".1f", " MB")
    soak = memory.get("soak") or {}
    calls = soak.get("calls")
    growth = soak.get("growth_mb")
    at_most(
        f"RSS flat after {calls:,} calls" if calls else "RSS flat after 1,000,000 calls", "≤ +5 MB, first to last checkpoint",
        growth, 5, "+.1f", " MB", "" if calls == 1_000_000 else "quick: fewer calls than the target's million",
    )
    dash = result.get("dashboard") or {}
    events = (dash.get("ledger") or {}).get("events")
    queries = [q for q in dash.get("queries", []) if q.get("p50_ms") is not None]
    worst = max(queries, key=lambda q: q["p50_ms"]) if queries else None
    at_most(
        f"dashboard queries over {events:,} events (slowest p50)" if events else "dashboard queries (slowest p50)",
        "≤ 50 ms each", worst and worst["p50_ms"], 50, ".1f", " ms",
        (worst["query"] if worst else "") + ("" if events == 10_000_000 else "; quick: not the target's 10M"),
    )
    exports = dash.get("export") or {}
    if exports:
        n = max(e["events"] for e in exports.values())
        peaks = [e["daemon_rss_peak_mb"] for e in exports.values() if e.get("daemon_rss_peak_mb") is not None]
        at_most(f"export of {n:,} events: daemon peak RSS", "≤ 100 MB", max(peaks) if peaks else None, 100, ".1f", " MB",
                "" if n == 1_000_000 else "quick: not the target's 1M")
        rates = {fmt: e["events_per_second"] for fmt, e in exports.items()}
        at_least(f"export of {n:,} events: speed ({'/'.join(rates)}, slowest)", "≥ 100,000 events/s",
                 min(rates.values()), 100_000, ",.0f", "/s")
    else:
        at_most("export of 1,000,000 events", "≤ 100 MB, ≥ 100,000/s", None, 0, ".0f")
    cold = (result.get("cold_start") or {}).get("noor_median_s")
    at_most("cold start to first served request (median)", "≤ 1 s", cold, 1.0, ".3f", " s")
    # Issue #23, the lone call: CPU per call against the bare proxy's in the same run, the tighter throughput
    # bound at c=32, and translation's cost (its own section prints each pair).
    for mode in ("json", "stream"):
        noor, bare = find(result, "noor", mode, 1), find(result, "bare proxy", mode, 1)
        at_most(f"CPU per call c=1 {mode} vs bare proxy (#23)", "≤ 1.10x",
                _ratio(noor and noor["cpu_ms_per_request"], bare and bare["cpu_ms_per_request"]), 1.10, ".2f", "x")
    for mode in ("json", "stream"):
        noor, bare = find(result, "noor", mode, 32), find(result, "bare proxy", mode, 32)
        at_least(f"throughput c=32 {mode} vs bare proxy (#23)", "≥ 0.95x",
                 _ratio(noor and noor["rps"], bare and bare["rps"]), 0.95, ".2f", "x")
    ratios = [row["ratio"] for row in (result.get("translation") or {}).get("rows", []) if row.get("ratio") is not None]
    at_most("translated call vs relayed, CPU (slowest pair) (#23)", "≤ 1.25x", max(ratios) if ratios else None, 1.25,
            ".2f", "x")
    litellm = (result.get("peers") or {}).get("litellm")
    if litellm:
        noor, peer = find(result, "noor", "json", 32), find(result, "litellm", "json", 32)
        at_least("throughput c=32 json vs LiteLLM", "≥ 30x", _ratio(noor and noor["rps"], peer and peer["rps"]), 30, ".1f", "x",
                 litellm.get("reason", "") if litellm.get("status") != "ok" else f"LiteLLM {litellm.get('version')}")
    return out


# -- the printed report ------------------------------------------------------------------------


def print_report(result: dict) -> None:
    m = result.get("machine", {})
    print(f"\nNoorAPI benchmarks ({result.get('mode')} run, {result.get('when')}, {result.get('seconds')} s)")
    print(
        f"machine: {m.get('cpu')}, {m.get('cpus')} CPUs, {m.get('memory_gb')} GB; Python {m.get('python')}, "
        f"aiohttp {m.get('aiohttp')}, uvloop {'installed' if m.get('uvloop_installed') else 'not installed'}; "
        f"load average {m.get('load_average_start')} → {m.get('load_average_end')}"
    )
    plan = result.get("plan", {})
    if result.get("mode") == "quick":
        print("quick run: short windows and small sizes — a smoke test; the figures are rough")
    print(f"each load: {plan.get('warmup_s')} s warm-up (excluded), {plan.get('duration_s')} s measured; closed loop, keep-alive")
    _print_load(result)
    _print_layers(result)
    _print_ledger(result)
    _print_memory(result)
    _print_scale_out(result)
    _print_stale(result)
    if result.get("translation"):
        from benchmarks.translation import print_table

        print_table(result["translation"])
    _print_dashboard(result)
    _print_targets(result)


def _print_stale(result: dict) -> None:
    stale = result.get("stale_connections")
    if stale:
        print("\nstale connections (python -m benchmarks.stale):")
        print(f"  {stale['calls']:,} calls to a provider closing idle connections after 0.5–2 s: {stale['client_errors']} "
              f"client errors, {stale['breaker_failures']} breaker failures, {stale['metered']:,} metered, "
              f"{stale['retries']} sent again on a fresh connection")


def _print_load(result: dict) -> None:
    rows = [r for r in result.get("rows", []) if r["section"] in ("matrix", "anthropic")]
    if not rows:
        return
    print("\nThroughput and latency (ms). + columns: added over the direct call at the same concurrency; "
          "x bare: throughput over the bare aiohttp proxy's")
    head = (f"{'system':<12} {'api':<8} {'mode':<6} {'c':>3} {'req/s':>8} {'x bare':>6} {'p50':>7} {'p99':>7} {'p99.9':>7} "
            f"{'+p50':>7} {'+p99':>7} {'+p99.9':>7} {'ttft50':>7} {'+ttft50':>7} {'cpu/req':>8} {'err':>4}")
    print(head)
    print("-" * len(head))
    for r in rows:
        direct = find(result, "direct", r["mode"], r["concurrency"], section=r["section"], api=r["api"])
        bare = find(result, "bare proxy", r["mode"], r["concurrency"], section=r["section"], api=r["api"])
        is_direct = r["system"] == "direct"
        plus = (lambda q, field="latency_ms": None if is_direct else _sub(_lat(r, q, field), _lat(direct, q, field)))
        print(
            f"{r['system']:<12} {('messages' if r['api'] == 'messages' else 'chat'):<8} {r['mode']:<6} {r['concurrency']:>3} "
            f"{r['rps']:>8.0f} {_f(_ratio(r['rps'], bare and bare['rps']), '.2f', 6)} "
            f"{_f(_lat(r, '50'), '.2f', 7)} {_f(_lat(r, '99'), '.2f', 7)} {_f(_lat(r, '99.9'), '.2f', 7)} "
            f"{_f(plus('50'), '+.2f', 7)} {_f(plus('99'), '+.2f', 7)} {_f(plus('99.9'), '+.2f', 7)} "
            f"{_f(_lat(r, '50', 'ttft_ms'), '.2f', 7)} {_f(plus('50', 'ttft_ms'), '+.2f', 7)} "
            f"{_f(r['cpu_ms_per_request'], '.3f', 8)} {r['errors']:>4}"
        )
    print("cpu/req: CPU ms of the system's own process per request (from /proc, over the measured window); "
          "the load generator's is in latest.json")


def _print_layers(result: dict) -> None:
    rows = [r for r in result.get("rows", []) if r["section"] in ("layers", "usage")]
    if not rows:
        return
    print("\nThe cost of each layer (c=32). x: throughput over the daemon with limits and metering both off")
    head = f"{'variant':<34} {'mode':<6} {'req/s':>8} {'x':>6} {'p50':>7} {'p99':>7} {'cpu/req':>8} {'err':>4}"
    print(head)
    print("-" * len(head))
    for r in rows:
        base = find(result, "noor, limits+metering off", r["mode"], r["concurrency"], section="layers")
        print(
            f"{r['system']:<34} {r['mode']:<6} {r['rps']:>8.0f} {_f(_ratio(r['rps'], base and base['rps']), '.3f', 6)} "
            f"{_f(_lat(r, '50'), '.2f', 7)} {_f(_lat(r, '99'), '.2f', 7)} {_f(r['cpu_ms_per_request'], '.3f', 8)} {r['errors']:>4}"
        )
    print("metering off = the real daemon with Ledger.record/enqueue stubbed by benchmarks/nometer.py (no row, no commit, "
          "no listeners); the usage rows: the client asks for usage (bytes forwarded as sent) or not (the gateway adds "
          "stream_options and strips the usage chunk)")
    extraction = result.get("extraction")
    if extraction:
        print(
            f"usage extraction in-process: {extraction['events_per_stream']}-event stream split into events "
            f"{extraction['split_us_per_stream']:.1f} µs, split + usage meter {extraction['split_and_meter_us_per_stream']:.1f} µs: "
            f"usage extraction {extraction['usage_extraction_us_per_stream']:.1f} µs per stream"
        )


def _print_ledger(result: dict) -> None:
    ledger = result.get("ledger")
    if not ledger:
        return
    b, c = ledger["burst"], ledger["closed_loop"]
    print(f"\nLedger writer (group commit, {ledger.get('filesystem', 'temp file')})")
    print(f"  burst of {b['events']:,} events: {b['events_per_second']:,} events/s in {b['batches']} batches "
          f"(commit latency p50 {b['commit_p50_ms']} ms, p99 {b['commit_p99_ms']} ms: queued behind the burst)")
    print(f"  {c['writers']} writers awaiting their commit: {c['events_per_second']:,} events/s, "
          f"mean batch {c['mean_batch']}, commit latency p50 {c['commit_p50_ms']} ms, p99 {c['commit_p99_ms']} ms")
    lone = ledger.get("lone")
    if lone:
        print(f"  a lone call's commit (concurrency 1): {lone['record_cpu_us']} µs of CPU per call, of which SQLite's "
              f"transaction alone {lone['sqlite_transaction_cpu_us']} µs")


def _print_scale_out(result: dict) -> None:
    scale = result.get("scale_out")
    if not scale:
        return
    if scale.get("status") != "ok":
        print(f"\nScale-out: skipped ({scale.get('reason')})")
        return
    single = find(result, "noor", "json", scale["concurrency"])
    shared = "PostgreSQL and Redis" if scale.get("redis") else "PostgreSQL (limits per daemon: Redis not reachable)"
    print(f"\nScale-out: daemons sharing {shared}, json c={scale['concurrency']}, connections spread over the daemons")
    print(f"  {'daemons':>7}  {'req/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'daemon CPU ms/req':>17}")
    if single:
        print(f"  {'1 (SQLite)':>7}  {single['rps']:>8,.0f}  {_f(_lat(single, '50'), '.2f', 7)}  "
              f"{_f(_lat(single, '99'), '.2f', 7)}  {_f(single.get('cpu_ms_per_request'), '.3f', 17)}")
    for row in scale["rows"]:
        lat = row["latency_ms"]
        print(f"  {row['daemons']:>7}  {row['rps']:>8,.0f}  {_f(lat.get('50'), '.2f', 7)}  {_f(lat.get('99'), '.2f', 7)}  "
              f"{_f(row.get('cpu_ms_per_request'), '.3f', 17)}")


def _print_memory(result: dict) -> None:
    memory = result.get("memory") or {}
    cold = result.get("cold_start") or {}
    print("\nMemory and start")
    print(f"  daemon RSS idle {_f(memory.get('idle_mb'), '.1f')} MB; peak under load {_f(memory.get('peak_mb') or memory.get('under_load_peak_mb'), '.1f')} MB; "
          f"bare proxy idle {_f(memory.get('bare_proxy_idle_mb'), '.1f')} MB"
          + (f"; LiteLLM idle {_f(memory.get('litellm_idle_mb'), '.1f')} MB" if memory.get("litellm_idle_mb") else ""))
    soak = memory.get("soak")
    if soak:
        points = ", ".join(f"{p['calls']:,}: {p['rss_mb']}" for p in soak["checkpoints"])
        print(f"  RSS (MB) after calls in the soak ({soak['calls']:,} calls in {soak['seconds']} s, after "
              f"{soak['served_before_soak']:,} earlier ones): {points}; growth {_f(soak['growth_mb'], '+.1f')} MB")
    if cold:
        print(f"  cold start to the first served request: noor {cold.get('noor_s')} s (median {cold.get('noor_median_s')})"
              + (f"; LiteLLM {cold.get('litellm_s')} s" if cold.get("litellm_s") else ""))
    litellm = (result.get("peers") or {}).get("litellm")
    if litellm and litellm.get("status") != "ok":
        print(f"  LiteLLM skipped: {litellm.get('reason')}")


def _print_dashboard(result: dict) -> None:
    dash = result.get("dashboard")
    if not dash:
        return
    ledger = dash["ledger"]
    origin = "cached" + (f", moved {ledger.get('shifted_days')} days forward" if ledger.get("shifted_days") else "") \
        if ledger.get("cached") else f"generated in {ledger.get('generate_seconds')} s"
    print(f"\nDashboard read path: a ledger of {ledger['events']:,} events, {ledger['usage_hourly_rows']:,} usage_hourly rows, "
          f"{ledger['accounts']} accounts, {ledger['keys']} keys ({origin}); daemon listening after {dash.get('daemon_listening_s')} s, "
          f"RSS {dash.get('daemon_rss_mb')} MB")
    head = f"  {'query':<26} {'p50 ms':>8} {'max ms':>8}  path"
    print(head)
    for q in dash.get("queries", []):
        print(f"  {q['query']:<26} {_f(q['p50_ms'], '.2f', 8)} {_f(q['max_ms'], '.2f', 8)}  {q['path']}")
    for fmt, e in (dash.get("export") or {}).items():
        print(f"  export {fmt}: {e['events']:,} events, {e['bytes'] / 1e6:.1f} MB in {e['seconds']} s = {e['events_per_second']:,} events/s; "
              f"daemon RSS {e['daemon_rss_before_mb']} MB before, {e['daemon_rss_peak_mb']} MB peak")
    verified = dash.get("verify")
    if verified:
        rate = f"{verified['events_per_second']:,} events/s" if verified.get("events_per_second") else "-"
        verdict = "clean" if verified["ok"] else f"{verified['differences']} differences"
        print(f"  noor ledger verify: {verdict} in {verified['check_seconds']} s of checking "
              f"({verified['seconds']} s with start-up) = {rate}")


def _print_targets(result: dict) -> None:
    rows = result.get("targets") or []
    if not rows:
        return
    print("\nTargets (issues #8 and #23), never failing the run")
    head = f"  {'':<1} {'target':<56} {'goal':<28} {'measured':>14}  note"
    print(head)
    for t in rows:
        mark = NA if t["met"] is None else TICK if t["met"] else CROSS
        print(f"  {mark:<1} {t['target']:<56} {t['goal']:<28} {t['shown']:>14}  {t['note']}")


# -- the chart ----------------------------------------------------------------------------------


def chart(result: dict, path: Path) -> Path | None:
    """Latency by percentile for each system, one panel per mode and concurrency (SVG). None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator
    except ImportError:
        return None
    rows = [r for r in result.get("rows", []) if r["section"] == "matrix"]
    panels = sorted({(r["mode"], r["concurrency"]) for r in rows}, key=lambda p: (p[0] != "json", p[1]))
    if not panels:
        return None
    quantiles = ["50", "75", "90", "95", "99", "99.5", "99.9", "99.99"]
    xs = [-math.log10(1 - float(q) / 100) for q in quantiles]
    columns = max(1, len({c for _, c in panels}))
    modes = sorted({m for m, _ in panels}, key=lambda m: m != "json")
    fig, axes = plt.subplots(len(modes), columns, figsize=(4.2 * columns, 3.6 * len(modes)), squeeze=False)
    colors = {"direct": "#555555", "bare proxy": "#1f77b4", "noor": "#d62728", "litellm": "#2ca02c"}
    concurrencies = sorted({c for _, c in panels})
    for i, mode in enumerate(modes):
        for j, concurrency in enumerate(concurrencies):
            ax = axes[i][j]
            for r in rows:
                if (r["mode"], r["concurrency"]) != (mode, concurrency):
                    continue
                ys = [r["latency_ms"].get(q) for q in quantiles]
                color = colors.get(r["system"])
                ax.plot(xs, ys, marker="o", markersize=3, label=r["system"], color=color)
                if mode == "stream" and r.get("ttft_ms"):
                    ax.plot(xs, [r["ttft_ms"].get(q) for q in quantiles], linestyle="--", linewidth=1, color=color)
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
            ax.set_xticks(xs)
            ax.set_xticklabels([f"p{q}" for q in quantiles], rotation=45, fontsize=7)
            ax.set_title(f"{mode}, concurrency {concurrency}" + (" (dashed: first token)" if mode == "stream" else ""), fontsize=9)
            ax.set_ylabel("ms")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"NoorAPI: latency by percentile ({result.get('mode')} run, {result.get('when')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)
    return path
