"""`noor tui`: the terminal dashboard.

With the admin token (NOOR_ADMIN_TOKEN, the keyring, or the token file in the data dir) it
is the operator's dashboard; with `--key` / NOOR_API_KEY it opens a key holder's view of
their own account. The dashboard reaches the daemon over HTTP only.
"""

from __future__ import annotations

import click

from noor_daemon.cli.common import EXIT_USAGE, connection_options, fail, find_token
from noor_daemon.client import InsecureUrl


@click.command()
@connection_options
@click.option(
    "--key",
    "api_key",
    envvar="NOOR_API_KEY",
    default=None,
    metavar="KEY",
    help="An API key: open the self-service view of its account instead of the admin dashboard [env: NOOR_API_KEY].",
)
@click.option("--theme", type=click.Choice(["dark", "light"]), default="dark", show_default=True, help="Colour theme (Ctrl+T switches).")
def tui(url: str, data_dir: str | None, api_key: str | None, theme: str) -> None:
    """Open the dashboard: live traffic, usage, quotas, keys, accounts, privacy, billing."""
    from noor_tui.app import make_app

    token = None if api_key else find_token(data_dir)[0]
    try:
        app = make_app(url, token=token, api_key=api_key, theme=f"noor-{theme}")
    except InsecureUrl as exc:
        fail(str(exc), EXIT_USAGE)
    app.run()
