"""`noor privacy …`: answer a person's request for their data."""

from __future__ import annotations

import sys

import click

from noor_daemon.cli.common import EXIT_USAGE, as_path, connection_options, fail, json_option, print_json, run_admin
from noor_daemon.client import AdminClient, ExportResult


@click.group()
def privacy() -> None:
    """Privacy requests: export an account's data."""


class _ProgressBar:
    """A click progress bar on stderr, opened once the daemon has said how many events come."""

    def __init__(self) -> None:
        self._bar = None
        self._shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if not total:
            return
        if self._bar is None:
            self._bar = click.progressbar(
                length=total, label="Exporting usage events", file=sys.stderr
            )
            self._bar.__enter__()
        self._bar.update(done - self._shown)
        self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@privacy.command("export")
@click.argument("email")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the export (mode 0600).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True,
              help="json: account, api_keys and usage_events; csv: the usage events.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@json_option
@connection_options
def export(email: str, output: str, fmt: str, force: bool, as_json: bool, url: str, data_dir: str | None) -> None:
    """Export the account EMAIL's data into FILE, readable by you only."""
    target = as_path(output)
    bar = _ProgressBar()

    async def run(admin: AdminClient) -> ExportResult:
        try:
            return await admin.export_account(email, target, format=fmt, progress=bar, overwrite=force)  # type: ignore[arg-type]
        finally:
            bar.close()

    try:
        result = run_admin(url, data_dir, run)
    except FileExistsError:
        fail(f"{target} already exists; add --force to replace it", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or type(exc).__name__}")
    if as_json:
        print_json(result.to_json())
    else:
        events = "" if result.events is None else f"{result.events} usage events, "
        click.echo(f"Wrote the export of {email} to {result.path} ({events}{result.bytes} bytes, mode 0600).", err=True)
