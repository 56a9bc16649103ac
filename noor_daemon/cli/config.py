"""`noor config …`: check a config file offline, or make the running daemon reload its own."""

from __future__ import annotations

import click

from noor_daemon.cli.common import EXIT_USAGE, connection_options, fail, json_option, print_json, print_table, run_admin
from noor_daemon.config import ConfigError, default_config_path, load


@click.group("config")
def config_group() -> None:
    """The TOML config: check it, reload it."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def check(file: str | None) -> None:
    """Validate FILE (default: NOOR_CONFIG or the user config file) without a daemon."""
    try:
        loaded = load(file)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    where = loaded.path or f"{default_config_path()} (absent: the built-in simulator config)"
    models = ", ".join(m.name for m in loaded.config.models)
    click.echo(f"{where}: OK — {len(loaded.config.providers)} provider(s); models: {models}")


@config_group.command("reload")
@json_option
@connection_options
def reload(as_json: bool, url: str, data_dir: str | None) -> None:
    """Make the running daemon re-read its config; a bad file is refused and the old one keeps serving."""
    result = run_admin(url, data_dir, lambda admin: admin.reload_config())
    if as_json:
        print_json(result)
        return
    click.echo(f"Reloaded {result['config'] or 'the built-in defaults'}.")
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@click.command("routes")
@json_option
@connection_options
def routes(as_json: bool, url: str, data_dir: str | None) -> None:
    """Upstream routes with their circuit-breaker state, latency and error rate."""
    rows = run_admin(url, data_dir, lambda admin: admin.routes())
    if as_json:
        print_json(rows)
        return
    print_table(
        ("PROVIDER", "MODEL", "STATE", "TTFT MS", "ERROR RATE", "REQUESTS", "FAILURES"),
        [(r["provider"], r["model"], r["state"], r["ttft_ms"], r["error_rate"], r["requests"], r["failures"]) for r in rows],
    )
