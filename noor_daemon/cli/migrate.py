"""`noor migrate`: move an installation's SQLite ledger into PostgreSQL, for several daemons.

It works on the files and the database directly (no daemon is involved: it must be stopped).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import click

from noor_daemon import paths
from noor_daemon.cli.common import ProgressBar, fail, json_option, print_json, print_table


def _source_path(ctx: click.Context, param: click.Parameter, value: str) -> Path:
    """`sqlite:PATH` (`sqlite:///abs/path` too) or a bare path; a data dir means its ledger.sqlite3."""
    if re.match(r"^(postgres|postgresql)://", value):
        raise click.BadParameter("the source is the SQLite ledger (sqlite:PATH); PostgreSQL goes in --to", ctx, param)
    text = value[len("sqlite:") :] if value.startswith("sqlite:") else value
    if text.startswith("//"):
        text = text[2:]
    if not text:
        raise click.BadParameter("give the ledger's path: sqlite:PATH", ctx, param)
    path = Path(text).expanduser()
    return paths.database_file(path) if path.is_dir() else path


def _target_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.match(r"^postgres(ql)?://", value):
        raise click.BadParameter(f"{value!r} is not a postgresql:// (or postgres://) URL", ctx, param)
    return value


@click.command("migrate")
@click.option("--from", "source", required=True, metavar="sqlite:PATH", callback=_source_path,
              help="The SQLite ledger (DATA_DIR/ledger.sqlite3; a data dir or a bare path works too).")
@click.option("--to", "target", required=True, metavar="postgresql://…", callback=_target_url,
              help="An empty PostgreSQL database (a password is best left to PGPASSWORD or ~/.pgpass).")
@click.option("--dry-run", is_flag=True, help="Count what would be copied and check the target; write nothing.")
@click.option("--chunk-rows", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True, hidden=True)
@json_option
def migrate(source: Path, target: str, dry_run: bool, chunk_rows: int, as_json: bool) -> None:
    """Move the SQLite ledger into PostgreSQL, every row or nothing.

    Accounts, keys, usage, rollups, the audit log, privacy records, the mail outbox and billing
    state are copied in one transaction, then checked (rows per table, token sums); any failure
    leaves PostgreSQL as it was. The target must be empty: the move never merges two ledgers.

    Stop the daemon first: rows it writes during the move would be left behind (a change seen
    during the copy aborts it). An older SQLite file is brought up to the current schema first.

    Afterwards point every daemon at the database in its config file, then start them:

    \b
        [storage]
        url = "postgresql://noor@db.example/noor"

    The SQLite file stays where it is, as a backup. Exit codes: 0 moved (or, with --dry-run,
    would move), 1 refused or failed, 2 a usage error.
    """
    from noor_daemon.ledger.migration import MigrationError, migrate_sqlite_to_postgres, redact

    bar = ProgressBar("Copying rows", enabled=not dry_run)

    async def run():
        try:
            return await migrate_sqlite_to_postgres(source, target, dry_run=dry_run, chunk_rows=chunk_rows, progress=bar)
        finally:
            bar.close()

    try:
        report = asyncio.run(run())
    except MigrationError as exc:
        fail(str(exc))
    if as_json:
        print_json(report.to_json())
        return
    if report.source_upgraded_from is not None:
        verb = "would be upgraded" if dry_run else "was upgraded"
        click.echo(f"{source} {verb} from schema version {report.source_upgraded_from} to {report.schema_version} first.", err=True)
    print_table(["table", "rows" if dry_run else "rows copied"], [[t.table, t.rows] for t in report.tables])
    if dry_run:
        click.echo(f"Would copy {report.rows} rows from {source} into {redact(target)} (its ledger tables are empty); nothing written.")
        return
    click.echo(f"Copied {report.rows} rows into {redact(target)} in {report.seconds:.1f} s; counts and sums match.")
    click.echo(f'Now set `[storage] url = "{redact(target)}"` in each daemon\'s config and start them.')
