"""`noor daemon`: run the gateway in the foreground."""

from __future__ import annotations

import logging
import os
import sys

import click

from noor_daemon import paths
from noor_daemon.config import ConfigError, load
from noor_daemon.secret_store import SecretError, ensure_admin_token


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1, or [server] host].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8787, or [server] port].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, envvar="NOOR_DATA_DIR", help="Where the ledger lives [env: NOOR_DATA_DIR].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="NOOR_CONFIG", help="The TOML config file [env: NOOR_CONFIG].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def daemon(host: str | None, port: int | None, data_dir: str | None, config_path: str | None, log_level: str) -> None:
    """Run the gateway in the foreground until interrupted."""
    from aiohttp import web

    from noor_daemon.app import create_app, server_options
    from noor_daemon.keys import DaemonSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        loaded = load(config_path)
        data = paths.ensure_private_dir(paths.data_dir(data_dir))
        token = ensure_admin_token(data)
        app = create_app(DaemonSettings(loaded, data, token.value, token.source, handle_signals=True))
    except (ConfigError, SecretError) as exc:
        click.echo(f"noor daemon: {exc}", err=True)
        sys.exit(2)
    server = loaded.config.server
    bind_host = host or server.host
    bind_port = server.port if port is None else port
    where = loaded.path or "built-in simulator (no config file)"
    click.echo(f"noor daemon {os.getpid()}: config {where}; data {data}; admin token from {token.source}", err=True)
    web.run_app(
        app,
        host=bind_host,
        port=bind_port,
        access_log=None,
        shutdown_timeout=server.shutdown_timeout,
        **server_options(loaded.config),
        print=lambda _msg: click.echo(f"noor daemon listening on http://{bind_host}:{bind_port}", err=True),
    )
