"""`noor ledger verify [--repair]`: check the derived tables against the usage facts, and rebuild them.

It opens the ledger itself (the config's `[storage]`: the SQLite file of the data dir, or PostgreSQL),
so it works with the daemon stopped or running: every read happens in one snapshot, so calls being
committed meanwhile cause no false alarm. `--repair` holds the write lock for the rebuild: a running
daemon's calls wait for it (or get 503 while `[ledger] fail_open` is false and it takes long).
"""

from __future__ import annotations

import asyncio

import click

from noor_daemon import paths
from noor_daemon.cli.common import ProgressBar, data_dir_option, fail, json_option, print_json, print_table


@click.group("ledger")
def ledger_group() -> None:
    """The usage ledger itself: check that its rollups agree with its events."""


@ledger_group.command("verify")
@click.option("--repair", is_flag=True, help="Rewrite the rollups from the events (one transaction), then check again.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="NOOR_CONFIG",
              help="The TOML config whose [storage] names the ledger [env: NOOR_CONFIG].")
@data_dir_option
@json_option
def verify(repair: bool, config_path: str | None, data_dir: str | None, as_json: bool) -> None:
    """Recompute the hourly, daily and per-route rollups from the usage events and report every difference.

    Each difference names its table, its key (hour or day, account, key, model; or provider and model),
    and the expected and found values. Exit codes: 0 the rollups match the events (after --repair: they
    do now), 1 differences found, 2 a usage error (an unreadable config).
    """
    from noor_daemon.config import ConfigError, load
    from noor_daemon.ledger import ledger_for
    from noor_daemon.ledger.verify import repair as rebuild
    from noor_daemon.ledger.verify import verify as check

    try:
        config = load(config_path).config
    except ConfigError as exc:
        fail(str(exc), 2)
    folder = paths.data_dir(data_dir)
    if not config.storage.url and not paths.database_file(folder).exists():
        fail(f"no ledger at {paths.database_file(folder)} (give --data-dir, or the config that names [storage])", 2)
    ledger = ledger_for(config.storage, paths.database_file(folder))

    async def run():
        await ledger.open()
        try:
            bar = ProgressBar("Verifying", enabled=not as_json)
            try:
                report = await check(ledger, progress=bar)
            finally:
                bar.close()
            if repair and not report.ok:
                written = await rebuild(ledger)
                found = report.difference_count
                report = await check(ledger)
                report.repaired = {"differences_before": found, **written}
            return report
        finally:
            await ledger.close()

    report = asyncio.run(run())
    if as_json:
        print_json(report.json())
    else:
        if report.repaired is not None:
            click.echo(f"Repaired: {report.repaired['differences_before']} differences; the rollups were rewritten from the events.")
        if report.differences:
            rows = []
            for d in report.differences:
                key = d.json()["key"]
                time_value = key.pop("hour", None) or key.pop("day", None)
                fields = sorted(set(d.expected or {}) | set(d.found or {}))
                changed = [f for f in fields if (d.expected or {}).get(f) != (d.found or {}).get(f)]
                rows.append([
                    d.table, time_value, " ".join(f"{k}={v or '-'}" for k, v in key.items()),
                    " ".join(f"{f}={(d.expected or {}).get(f, '-')}" for f in changed) or "(no row)",
                    " ".join(f"{f}={(d.found or {}).get(f, '-')}" for f in changed) or "(no row)",
                ])
            print_table(["table", "time", "key", "expected", "found"], rows)
        extra = f" (first {len(report.differences)} listed)" if report.difference_count > len(report.differences) else ""
        verdict = "the rollups match the events" if report.ok else f"{report.difference_count} differences{extra}"
        click.echo(f"{report.events:,} events, {report.attempts:,} failed attempts checked in {report.seconds:.1f} s: {verdict}.")
    if not report.ok:
        raise click.exceptions.Exit(1)
