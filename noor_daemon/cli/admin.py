"""`noor admin …`: the admin token itself."""

from __future__ import annotations

import click

from noor_daemon import paths
from noor_daemon.cli.common import connection_options, find_token, json_option, print_json, run_admin


@click.group()
def admin() -> None:
    """Manage the admin token."""


@admin.command("rotate-token")
@click.option("--save/--no-save", default=True, show_default=True,
              help="Store the new token where the old one was found (keyring or the data dir's token file).")
@json_option
@connection_options
def rotate_token(save: bool, as_json: bool, url: str, data_dir: str | None) -> None:
    """Replace the admin token: the old one stops working at once; the new one is shown this once.

    The daemon keeps only the new token's SHA-256.
    """
    from noor_daemon.secret_store import save_client_token

    _old, source = find_token(data_dir)
    result = run_admin(url, data_dir, lambda client: client.rotate_admin_token())
    token = result["token"]
    saved: str | None = None
    problem: str | None = None
    if save:
        try:
            saved = save_client_token(source, token, paths.data_dir(data_dir))
        except Exception as exc:  # the token is printed below either way
            problem = type(exc).__name__
    if as_json:
        print_json({"token": token, "rotated_at": result.get("rotated_at"), "saved_to": saved})
        return
    click.echo("Rotated the admin token; the old one no longer works. The new one:", err=True)
    click.echo(token)
    if saved:
        click.echo(f"Saved to {saved}, where `noor` finds it.", err=True)
    elif problem:
        click.echo(f"Could not save it ({problem}): store it now, it will not be shown again.", err=True)
    elif source.startswith("env:"):
        click.echo("Update NOOR_ADMIN_TOKEN wherever it is set: it will not be shown again.", err=True)
    else:
        click.echo("Store it now (e.g. NOOR_ADMIN_TOKEN): it will not be shown again.", err=True)
