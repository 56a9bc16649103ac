"""`noor doctor`: what is configured, where the data lives, and whether the daemon answers.

It reads only paths and the config file; it never opens the ledger and never prints a secret.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from noor_daemon import __version__, paths
from noor_daemon.cli.common import configured_url, connection_options, find_token, json_option, print_json
from noor_daemon.client import AdminApiError, AdminClient, DaemonUnreachable, InsecureUrl


def _config_report(config_path: str | None) -> dict[str, Any]:
    from noor_daemon.config import ConfigError, default_config_path, load

    path = config_path or str(default_config_path())
    report: dict[str, Any] = {"path": path, "explicit": config_path is not None, "exists": Path(path).is_file()}
    try:
        loaded = load(config_path)
    except ConfigError as exc:
        return {**report, "valid": False, "error": str(exc), "simulator_only": None}
    except OSError as exc:
        return {**report, "valid": False, "error": f"unreadable: {exc.strerror}", "simulator_only": None}
    storage = loaded.config.storage.url
    return {**report, "valid": True, "error": None, "simulator_only": loaded.config.simulator_only,
            "storage": _without_password(storage) if storage else None}


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return f"postgresql://{parts.username + '@' if parts.username else ''}{where}"


async def _daemon_report(url: str, token: str | None) -> dict[str, Any]:
    report: dict[str, Any] = {"url": url, "reachable": False, "version": None, "simulator_only": None,
                              "limits": None, "admin_token_accepted": None, "error": None}
    try:
        admin = AdminClient(url, token, timeout=3.0)
    except InsecureUrl as exc:  # the token is not sent over plain http:// to another machine
        return {**report, "error": str(exc)}
    async with admin:
        try:
            health = await admin.healthz()
        except (DaemonUnreachable, AdminApiError) as exc:
            return {**report, "error": str(exc)}
        report.update(reachable=True, version=health.version, simulator_only=health.simulator_only, limits=health.limits)
        try:
            await admin.usage_summary(hours=1)
            report["admin_token_accepted"] = True
        except AdminApiError as exc:
            report["admin_token_accepted"] = False
            report["error"] = exc.message
        except DaemonUnreachable as exc:
            report["error"] = str(exc)
    return report


def _egress_report(config_path: str | None, data: Path) -> list[dict[str, Any]]:
    """How each provider is reached: directly or through which proxy (never its credentials), and
    whether that proxy opens a tunnel to it, made the way the daemon makes its connections."""
    from noor_daemon.config import ConfigError, load
    from noor_daemon.gateway.egress import egress_for
    from noor_daemon.secret_store import SecretError, open_backend

    try:
        config = load(config_path).config
    except (ConfigError, OSError):
        return []
    backend = open_backend(config.secrets, data)
    rows = []
    for provider in config.providers:
        if provider.kind == "simulator":
            continue
        row: dict[str, Any] = {"provider": provider.name, "proxy": None, "source": None, "credentials": None,
                               "route": None, "tunnel": None, "error": None}
        try:
            egress = egress_for(provider, config.server.trust_env, backend)
        except (ConfigError, SecretError) as exc:
            rows.append({**row, "error": str(exc)})
            continue
        row.update(proxy=egress.proxy_url, source=egress.source, credentials=egress.credentials, route=egress.describe())
        if egress.proxy is not None:  # plain http:// providers: a connection to the proxy, which forwards each request
            row["tunnel"] = asyncio.run(_open_through(provider, egress))
            row["tls"] = (provider.base_url or "").startswith("https:")
        rows.append(row)
    return rows


async def _open_through(provider, egress) -> str:
    """Open one connection to the provider through its proxy (TLS included) and close it: "ok" or why not."""
    from noor_daemon.config import ConfigError
    from noor_daemon.gateway import http1
    from noor_daemon.tls import provider_ssl_context

    try:
        context = provider_ssl_context(provider)
    except ConfigError as exc:
        return str(exc)
    pool = http1.Pool()
    origin, _ = pool.origin(provider.base_url, context, provider=provider.name, proxy=egress.proxy)
    try:
        connection = await origin.acquire(min(provider.connect_timeout, 5.0), fresh=True)
        connection.close()
        return "ok"
    except http1.UpstreamUnreachable as exc:
        return str(exc)
    finally:
        pool.close()


def collect(url: str, data_dir: str | None, config_path: str | None) -> dict[str, Any]:
    from noor_daemon.secret_store import keyring_backend_name, keyring_usable, secrets_report

    data = paths.data_dir(data_dir)
    token, token_source = find_token(data_dir)
    return {
        "version": __version__,
        "config": _config_report(config_path),
        "data_dir": {"path": str(data), "exists": data.is_dir()},
        "ledger": {"path": str(paths.database_file(data)), "exists": paths.database_file(data).is_file()},
        "keyring": {"backend": keyring_backend_name(), "usable": keyring_usable()},
        "secrets": secrets_report(config_path, data),
        "admin_token": {"found": token is not None, "source": token_source},
        "providers": _egress_report(config_path, data),
        "daemon": asyncio.run(_daemon_report(url, token)),
    }


def _describe(report: dict[str, Any]) -> list[tuple[str, str]]:
    config, daemon, ring = report["config"], report["daemon"], report["keyring"]
    if not config["exists"] and not config["explicit"]:
        config_text = f"{config['path']} (not found: the built-in simulator is used)"
    elif config["valid"]:
        config_text = f"{config['path']} (valid)"
    else:
        config_text = f"{config['path']} (INVALID: {config['error']})"
    if daemon["reachable"]:
        mode = ", simulator only" if daemon["simulator_only"] else ""
        token_state = {True: "admin token accepted", False: "admin token REFUSED"}.get(daemon["admin_token_accepted"], "")
        daemon_text = f"{daemon['url']}: answering (version {daemon['version']}{mode}); {token_state}"
    else:
        daemon_text = f"{daemon['url']}: not answering; start it with `noor daemon`"
    exists = {True: "exists", False: "not created yet"}
    rows = [
        ("version", report["version"]),
        ("config file", config_text),
        ("data dir", f"{report['data_dir']['path']} ({exists[report['data_dir']['exists']]})"),
        ("ledger", f"PostgreSQL {config['storage']} (shared by every daemon configured with it)" if config.get("storage")
         else f"{report['ledger']['path']} ({exists[report['ledger']['exists']]})"),
        ("keyring", f"{ring['backend']} ({'usable' if ring['usable'] else 'NO OS keyring backend: the admin token goes to a 0600 file in the data dir'})"),
        ("secrets", report["secrets"]["where"] + (f"; {report['secrets']['advice']}" if report["secrets"]["advice"] else "")),
        ("admin token", report["admin_token"]["source"]),
        ("daemon", daemon_text),
    ]
    if daemon["limits"] in LIMITS_STATES:
        rows.append(("limits", LIMITS_STATES[daemon["limits"]]))
    for provider in report["providers"]:
        rows.append(("proxy", f"{provider['provider']}: {_egress_text(provider)}"))
    return rows


def _egress_text(provider: dict[str, Any]) -> str:
    if provider["error"]:
        return f"CANNOT BE REACHED AS CONFIGURED: {provider['error']}"
    text = provider["route"]
    if provider["tunnel"] == "ok":
        return f"{text}; " + ("a tunnel to the provider opened, its certificate verified" if provider.get("tls") else "the proxy answers")
    if provider["tunnel"]:
        return f"{text}; NO TUNNEL: {provider['tunnel']}"
    return text


LIMITS_STATES = {
    "local": "counted in this daemon",
    "shared": "shared with the other daemons through Redis",
    "fallback": "LOCAL FALLBACK: Redis is unreachable, so this daemon enforces its limits alone until it is back",
}


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="NOOR_CONFIG",
              help="The TOML config file to check [env: NOOR_CONFIG].")
@json_option
@connection_options
def doctor(config_path: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Show what is configured, where the data lives and whether the daemon answers."""
    if click.get_current_context().get_parameter_source("url") == click.core.ParameterSource.DEFAULT:
        url = configured_url(config_path)  # the daemon of the file named by --config
    report = collect(url, data_dir, config_path)
    if as_json:
        print_json(report)
        return
    for label, text in _describe(report):
        click.echo(f"{label:<12} {text}")
