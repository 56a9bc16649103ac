"""`noor secret …`: provider keys and passwords in the secrets backend, for `keyring:NAME` references.

A value is read from a hidden prompt or from stdin, never from the command line (argv shows
up in `ps` and shell history), and never printed. The backend is the config's `[secrets]`:
the OS keyring by default, or the 0600 file when the config chooses `backend = "file"`.
"""

from __future__ import annotations

import sys

import click

from noor_daemon import paths
from noor_daemon.cli.common import EXIT_USAGE, data_dir_option, fail, json_option, print_json


def _backend(config_path: str | None, data_dir: str | None):
    from noor_daemon.config import ConfigError, load
    from noor_daemon.secret_store import open_backend

    try:
        loaded = load(config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    data = paths.data_dir(data_dir)
    if loaded.config.secrets.backend == "file":
        try:
            paths.ensure_private_dir(data)
        except paths.UnsafeDirectory as exc:
            fail(str(exc), EXIT_USAGE)
    return open_backend(loaded.config.secrets, data)


def _interactive() -> bool:
    return sys.stdin.isatty()


def config_option(f):
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="NOOR_CONFIG",
        help="The config whose [secrets] backend to use [env: NOOR_CONFIG].",
    )(f)


@click.group()
def secret() -> None:
    """Store provider keys and passwords for `keyring:NAME` references in the config."""


@secret.command("set")
@click.argument("name")
@config_option
@data_dir_option
def set_(name: str, config_path: str | None, data_dir: str | None) -> None:
    """Store the secret NAME, read from a hidden prompt or from stdin (never from the command line)."""
    from noor_daemon.secret_store import SecretError, check_name

    try:
        check_name(name)
    except SecretError as exc:
        fail(str(exc), EXIT_USAGE)
    backend = _backend(config_path, data_dir)
    if _interactive():
        value = click.prompt(f"Value for {name}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.read().rstrip("\r\n")
    if not value.strip():
        fail("refusing to store an empty secret", EXIT_USAGE)
    try:
        backend.set(name, value)
    except SecretError as exc:
        fail(str(exc), EXIT_USAGE)
    click.echo(f"Stored {name} in the {backend.describe()}. Reference it in the config as \"keyring:{name}\".", err=True)


@secret.command("list")
@json_option
@config_option
@data_dir_option
def list_(as_json: bool, config_path: str | None, data_dir: str | None) -> None:
    """The names of the stored secrets (never their values)."""
    from noor_daemon.secret_store import SecretError

    backend = _backend(config_path, data_dir)
    try:
        names = backend.names()
    except SecretError as exc:
        fail(str(exc), EXIT_USAGE)
    if as_json:
        print_json({"backend": backend.kind, "where": backend.describe(), "names": names})
        return
    click.echo(f"# {backend.describe()}", err=True)
    if not names:
        click.echo("No secrets stored through `noor secret set`.", err=True)
    for name in names:
        click.echo(name)


@secret.command("delete")
@click.argument("name")
@config_option
@data_dir_option
def delete(name: str, config_path: str | None, data_dir: str | None) -> None:
    """Delete the secret NAME."""
    from noor_daemon.secret_store import SecretError, check_name

    try:
        check_name(name)
        found = _backend(config_path, data_dir).delete(name)
    except SecretError as exc:
        fail(str(exc), EXIT_USAGE)
    if not found:
        fail(f"no secret named {name!r}", 1)
    click.echo(f"Deleted {name}.", err=True)
