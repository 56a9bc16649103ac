"""`noor daemon`: run the gateway in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import os
import sys

import click

from noor_daemon import paths
from noor_daemon.cli.sd_notify import notify
from noor_daemon.config import ConfigError, load
from noor_daemon.redaction import configure_logging
from noor_daemon.secret_store import SecretError, daemon_admin_token
from noor_daemon.tls import server_ssl_context


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
    from noor_daemon.settings import DaemonSettings

    configure_logging(log_level)  # every record loses anything shaped like an API key
    os.umask(0o077)  # whatever the daemon or a library creates is private to its user
    try:
        loaded = load(config_path)
        data = paths.ensure_private_dir(paths.data_dir(data_dir))
        token = daemon_admin_token(data)
        ssl_context = server_ssl_context(loaded)
        app = create_app(
            DaemonSettings(loaded, data, token.value, token.source, handle_signals=True, admin_token_hash=token.digest)
        )
    except (ConfigError, SecretError, paths.UnsafeDirectory) as exc:
        click.echo(f"noor daemon: {exc}", err=True)
        sys.exit(2)
    server = loaded.config.server
    bind_host = host or server.host
    bind_port = server.port if port is None else port
    scheme = "https" if ssl_context else "http"
    where = loaded.path or "built-in simulator (no config file)"
    click.echo(f"noor daemon {os.getpid()}: config {where}; data {data}; admin token from {token.source}", err=True)
    if ssl_context is None and not _is_loopback_host(bind_host):
        click.echo(
            f"noor daemon: WARNING: plain HTTP on {bind_host}: API keys cross the network in the clear; "
            "set [server] tls_cert and tls_key (`noor tls self-signed`)",
            err=True,
        )
    where_listening = f"{scheme}://{bind_host}:{bind_port}"

    def listening() -> None:
        click.echo(f"noor daemon listening on {where_listening}", err=True)
        notify("READY=1", f"STATUS=listening on {where_listening}", f"MAINPID={os.getpid()}")  # a Type=notify unit

    loop = new_event_loop()
    serving = loop.create_task(
        _serve(app, bind_host, bind_port, ssl_context, server.shutdown_timeout, server_options(loaded.config), listening)
    )
    try:
        loop.run_until_complete(serving)
    except (web.GracefulExit, KeyboardInterrupt):  # SIGTERM, SIGINT: running calls get shutdown_timeout
        notify("STOPPING=1", "STATUS=letting running calls finish")
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(serving)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


GC_YOUNG = 20_000


async def _serve(app, host: str, port: int, ssl_context, shutdown_timeout: float, options: dict, listening) -> None:
    """Serve `app` until a signal ends it, through `GatewayRunner` (malformed requests answered as JSON, never
    echoed or logged). The runner stops accepting, lets running calls finish, then runs the app's cleanup."""
    from noor_daemon.server import GatewayRunner

    runner = GatewayRunner(app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout, **options)
    await runner.setup()
    try:
        await runner.listen(host, port, ssl_context)
        # What start-up made (modules, config, the keyring, prices, compiled routes) lives as long as the daemon:
        # out of later collections, which would otherwise walk it all again on every full pass.
        gc.collect()
        gc.freeze()
        # A call makes a few hundred short-lived objects and almost never a cycle: the youngest generation
        # is collected every GC_YOUNG allocations instead of Python's 700 (each pass costs the call that
        # set it off, whatever it was doing).
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
        listening()
        while True:
            await asyncio.sleep(3600)
    finally:
        await runner.cleanup()


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (`pip install 'noorapi[fast]'`): a faster loop for the same code."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
