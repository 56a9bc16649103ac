"""What every admin command shares: where the daemon is, the admin token, output, exit codes.

Exit codes: 1 the daemon refused (an admin API error), 2 a usage error, 3 no daemon answers.
A failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from noor_daemon import paths
from noor_daemon.client import DEFAULT_URL, AdminApiError, AdminClient, DaemonUnreachable, InsecureUrl

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_API_ERROR) -> NoReturn:
    click.echo(f"noor: {message}", err=True)
    raise click.exceptions.Exit(code)


# -- options ---------------------------------------------------------------------


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if value is None:
        return configured_url()
    if not re.match(r"^https?://[^/\s]+", value):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL like {DEFAULT_URL}", ctx, param)
    return value


def configured_url(config_path: str | None = None) -> str:
    """Where the daemon of the config file in effect listens ([server] host, port and TLS), so a daemon on
    another port needs no --url; http://127.0.0.1:8787 when there is no file or its [server] is unreadable."""
    from noor_daemon.config import ConfigError, server_settings

    try:
        server = server_settings(config_path)
    except (ConfigError, OSError):
        return DEFAULT_URL
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(server.host, server.host)  # a wildcard: this machine
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if server.tls_cert else 'http'}://{host}:{server.port}"


def url_option(f: F) -> F:
    return click.option(
        "--url",
        envvar="NOOR_URL",
        default=None,
        metavar="URL",
        callback=_check_url,
        help="Where the daemon listens [env: NOOR_URL; default: the config file's [server] host, port and TLS, "
        f"else {DEFAULT_URL}].",
    )(f)


def data_dir_option(f: F) -> F:
    return click.option(
        "--data-dir",
        envvar="NOOR_DATA_DIR",
        default=None,
        type=click.Path(file_okay=False),
        help="The daemon's data dir, where the admin token file may be [env: NOOR_DATA_DIR].",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def connection_options(f: F) -> F:
    """`--url` and `--data-dir`: how an admin command reaches the daemon and finds its token."""
    return url_option(data_dir_option(f))


# -- talking to the daemon ---------------------------------------------------------


def find_token(data_dir: str | None) -> tuple[str | None, str]:
    """The admin token and where it came from: NOOR_ADMIN_TOKEN, the keyring, or the token file."""
    from noor_daemon.secret_store import find_admin_token

    try:
        found = find_admin_token(paths.data_dir(data_dir))
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if found is None:
        return None, "none found"
    return found.value, found.source


def run_admin(url: str, data_dir: str | None, action: Callable[[AdminClient], Awaitable[T]]) -> T:
    """Run `action` with a client of the daemon at `url`; admin failures become one-line exits."""
    token, _source = find_token(data_dir)

    async def main() -> T:
        async with AdminClient(url, token) as admin:
            return await action(admin)

    try:
        return asyncio.run(main())
    except InsecureUrl as exc:
        fail(str(exc), EXIT_USAGE)
    except AdminApiError as exc:
        hint = ""
        if exc.status == 401 and token is None:
            hint = " No admin token found: set NOOR_ADMIN_TOKEN, or pass the daemon's --data-dir."
        fail(f"{exc.message}{hint} ({exc.status} {exc.code})", EXIT_API_ERROR)
    except DaemonUnreachable as exc:
        fail(f"{exc}. Start it with `noor daemon`, or point --url / NOOR_URL at it.", EXIT_UNREACHABLE)


# -- output ----------------------------------------------------------------------


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def short_time(iso_time: str | None) -> str | None:
    """`2025-01-02T03:04:05.678Z` as `2025-01-02 03:04Z` for tables."""
    return f"{iso_time[:10]} {iso_time[11:16]}Z" if iso_time else None


def show_issued_key(secret: str, what: str) -> None:
    """The full key alone on stdout (so `$(noor key create …)` captures it), the advice on stderr."""
    click.echo(what, err=True)
    click.echo(secret)
    click.echo("Store it now: it will not be shown again.", err=True)


# -- argument types --------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration(click.ParamType):
    """`90m`, `12h`, `30d`, `2w` (or plain seconds) as a number of seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", str(value).lower())
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"] if match else 0
        if seconds <= 0:
            self.fail(f"{value!r} is not a duration like 90m, 12h or 30d", param, ctx)
        return seconds


def comma_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def debug_enabled() -> bool:
    return os.environ.get("NOOR_DEBUG", "") not in ("", "0")


def as_path(value: str) -> Path:
    return Path(value).expanduser()


class ProgressBar:
    """A click progress bar on stderr for long work, opened once the total is known (`bar(done, total)`)."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self._label = label
        self._enabled = enabled
        self._bar = None
        self._shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if not (self._enabled and total):
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self._label, file=sys.stderr)
            self._bar.__enter__()
        self._bar.update(done - self._shown)
        self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
