"""`noor config …`: check a config file offline, or make the running daemon reload its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from noor_daemon import paths
from noor_daemon.cli.common import (
    EXIT_API_ERROR,
    EXIT_USAGE,
    connection_options,
    data_dir_option,
    fail,
    json_option,
    print_json,
    print_table,
    run_admin,
)
from noor_daemon.config import Config, ConfigError, default_config_path, load
from noor_daemon.secret_store import SecretError, open_backend, resolve


@click.group("config")
def config_group() -> None:
    """The TOML config: check it, reload it."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="NOOR_CONFIG",
              help="The TOML config file [env: NOOR_CONFIG; default: the user config file].")
@data_dir_option
@json_option
def check(file: str | None, config_path: str | None, data_dir: str | None, as_json: bool) -> None:
    """Validate the config file (FILE or --config) without a daemon, and resolve every keyring:/env: reference in it.

    Exit 0 when the daemon could start with it; 1 when a reference cannot be resolved; 2 when the file is invalid.
    """
    try:
        loaded = load(file or config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    references = resolve_references(loaded.config, paths.data_dir(data_dir))
    failed = [r for r in references if r["error"]]
    if as_json:
        print_json({"path": str(loaded.path) if loaded.path else None, "valid": True,
                    "providers": [p.name for p in loaded.config.providers], "models": [m.name for m in loaded.config.models],
                    "references": references})
    else:
        where = loaded.path or f"{default_config_path()} (absent: the built-in simulator config)"
        models = ", ".join(m.name for m in loaded.config.models)
        click.echo(f"{where}: {'OK' if not failed else 'VALID'} — {len(loaded.config.providers)} provider(s); models: {models}")
        for ref in references:
            click.echo(f"  {ref['setting']} = {ref['reference']}: {ref['error'] or 'resolves'}")
    if failed:
        fail(f"{len(failed)} secret reference(s) cannot be resolved; the daemon would refuse to start", EXIT_API_ERROR)


_REFERENCE = re.compile(r"^(keyring|env):[A-Za-z0-9_.\-]+$")
_IN_URL = re.compile(r"^[a-z]+://[^:/@]*:((?:keyring|env):[A-Za-z0-9_.\-]+)@")
"""A password reference inside a proxy URL: http://user:keyring:NAME@host:port."""


def resolve_references(config: Config, data_dir: Path) -> list[dict[str, Any]]:
    """Every secret reference of the config, resolved through the backend `[secrets]` chooses, as the daemon would at start.

    Only whether each resolves is reported (and why not), never a value.
    """
    backend = open_backend(config.secrets, data_dir)
    report = []
    for setting, value in _strings(config.model_dump(exclude={"models", "plans", "prices"})):
        found = _REFERENCE.match(value) or _IN_URL.match(value)
        if not found:
            continue
        reference = found.group(1) if found.re is _IN_URL else value
        try:
            resolve(reference, what=setting, backend=backend)
            error = None
        except SecretError as exc:
            error = str(exc).removeprefix(f"{setting}: ")
        report.append({"setting": setting, "reference": reference, "error": error})
    return report


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            named = item.get("name") if isinstance(item, dict) else None
            yield from _strings(item, f"{path}[{named or index}]")


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
