"""`noor tui`: the terminal dashboard.

With the admin token (NOOR_ADMIN_TOKEN, the keyring, or the token file in the data dir) it
is the operator's dashboard; with `--me` it opens a key holder's view of their own account, the
key read from NOOR_API_KEY, else from stdin when it is not a terminal, else from a prompt that does
not echo: never from the command line, where `ps` and the shell's history would keep it.
The dashboard reaches the daemon over HTTP only.
"""

from __future__ import annotations

import os
import sys

import click

from noor_daemon.cli.common import EXIT_USAGE, connection_options, fail, find_token
from noor_daemon.client import InsecureUrl


@click.command()
@connection_options
@click.option(
    "--me",
    "self_service",
    is_flag=True,
    help="Open a key holder's view of their own account (usage, limits, keys, export, deletion). The API key is read "
    "from NOOR_API_KEY, else stdin, else a hidden prompt.",
)
@click.option("--theme", type=click.Choice(["dark", "light"]), default="dark", show_default=True, help="Colour theme (Ctrl+T switches).")
def tui(url: str, data_dir: str | None, self_service: bool, theme: str) -> None:
    """Open the dashboard: live traffic, usage, quotas, keys, accounts, privacy, billing."""
    from noor_tui.app import make_app

    api_key = read_api_key() if self_service or os.environ.get("NOOR_API_KEY") else None
    token = None if api_key else find_token(data_dir)[0]
    try:
        app = make_app(url, token=token, api_key=api_key, theme=f"noor-{theme}")
    except InsecureUrl as exc:
        fail(str(exc), EXIT_USAGE)
    app.run()


def read_api_key() -> str:
    """The key holder's API key: NOOR_API_KEY, else one line of stdin (a pipe), else a prompt that does not echo."""
    key = os.environ.get("NOOR_API_KEY", "").strip()
    if not key and not sys.stdin.isatty():
        key = sys.stdin.readline().strip()
        _reattach_terminal()
    if not key:
        key = click.prompt("API key", hide_input=True, err=True).strip()
    if not key.startswith("sk-noor-"):
        fail("that is not a NoorAPI key (they start sk-noor-)", EXIT_USAGE)
    return key


def _reattach_terminal() -> None:
    """The dashboard needs the terminal on stdin once the key has been read from a pipe."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return  # no terminal at all: the dashboard will say so itself
    os.dup2(fd, sys.stdin.fileno())
    os.close(fd)
