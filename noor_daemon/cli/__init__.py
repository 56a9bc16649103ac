"""The `noor` console script: one module per command group."""

from __future__ import annotations

import click

from noor_daemon import __version__
from noor_daemon.cli.daemon import daemon


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="noor")
def cli() -> None:
    """NoorAPI: a self-hosted LLM API gateway with a terminal dashboard."""


cli.add_command(daemon)


def main() -> None:
    cli()
