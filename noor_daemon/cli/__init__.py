"""The `noor` console script: one module per command group."""

from __future__ import annotations

import io
import os
import sys

import click

from noor_daemon import __version__
from noor_daemon.cli.account import account
from noor_daemon.cli.admin import admin
from noor_daemon.cli.billing import billing
from noor_daemon.cli.completion import completion
from noor_daemon.cli.config import config_group, routes
from noor_daemon.cli.daemon import daemon
from noor_daemon.cli.demo import demo
from noor_daemon.cli.doctor import doctor
from noor_daemon.cli.init import init
from noor_daemon.cli.key import key
from noor_daemon.cli.ledger import ledger_group
from noor_daemon.cli.limits import abuse, account_limits, key_limits, quota, suspend_account, suspend_key, unsuspend_account, unsuspend_key
from noor_daemon.cli.migrate import migrate
from noor_daemon.cli.privacy import privacy
from noor_daemon.cli.secret import secret
from noor_daemon.cli.service import service
from noor_daemon.cli.spend import prices, spend
from noor_daemon.cli.tls import tls
from noor_daemon.cli.tui import tui
from noor_daemon.cli.usage import usage


class NoorGroup(click.Group):
    """Turns an unexpected failure into one line on stderr and exit 1; NOOR_DEBUG=1 shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # `noor … | head`: the reader left; say nothing more
            _silence_stdout()
            raise click.exceptions.Exit(1) from None
        except Exception as exc:
            from noor_daemon.cli.common import debug_enabled

            if debug_enabled():
                raise
            click.echo(f"noor: unexpected error ({type(exc).__name__}); rerun with NOOR_DEBUG=1 for details", err=True)
            raise click.exceptions.Exit(1) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit-time flush cannot fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


@click.group(cls=NoorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="noor")
def cli() -> None:
    """NoorAPI: a self-hosted LLM API gateway with a terminal dashboard."""


for command in (daemon, account, key, usage, quota, abuse, privacy, config_group, routes, doctor, demo, tui):
    cli.add_command(command)
cli.add_command(billing)  # Stripe: checkout and portal links, an account's billing state
cli.add_command(spend)  # cost against the budgets, per account, key or model
cli.add_command(prices)  # what each model costs, and which have no price
cli.add_command(migrate)  # SQLite → PostgreSQL, for several daemons
cli.add_command(ledger_group)  # noor ledger verify [--repair]
for command in (suspend_key, unsuspend_key, key_limits):
    key.add_command(command)
for command in (suspend_account, unsuspend_account, account_limits):
    account.add_command(command)
for command in (secret, admin, tls):  # security: secrets backend, admin token, certificates
    cli.add_command(command)
cli.add_command(completion)  # tab completion for bash, zsh and fish
cli.add_command(init)  # providers, keys, a config, the first account and key, in one command
cli.add_command(service)  # the daemon as a systemd user unit or a launchd agent


def main() -> None:
    cli()
