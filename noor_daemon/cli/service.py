"""`noor service install|uninstall|status|logs`: the daemon as a user service that starts at login and restarts
on failure — a systemd user unit on Linux, a launchd agent on macOS.

The unit runs `noor daemon` as it runs in a terminal: it tells systemd when it listens (`Type=notify`,
sd_notify), SIGHUP reloads the config, SIGTERM stops it gracefully (running calls get `shutdown_timeout`),
and its log goes to the journal. It is sandboxed: no new privileges, the system read-only, home read-only
but for the data dir, a private /tmp.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from noor_daemon import paths
from noor_daemon.cli.common import EXIT_API_ERROR, EXIT_USAGE, fail

UNIT = "noor.service"
LABEL = "org.noorapi.daemon"


@dataclass(frozen=True)
class Plan:
    """What the service runs: the absolute `noor`, and the config and data dir it was installed with."""

    executable: Path
    config: Path | None
    data_dir: Path
    shutdown_timeout: float

    @property
    def arguments(self) -> list[str]:
        args = [str(self.executable), "daemon", "--data-dir", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args


def systemd_unit(plan: Plan) -> str:
    """The systemd user unit (`systemd-analyze verify` accepts it)."""
    command = " ".join(_systemd_quote(a) for a in plan.arguments)
    return f"""\
# Written by `noor service install`; `noor service uninstall` removes it.
[Unit]
Description=NoorAPI LLM gateway
Documentation=man:systemd.service(5)

[Service]
Type=notify
NotifyAccess=main
ExecStart={command}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
TimeoutStopSec={int(plan.shutdown_timeout) + 15}
Restart=on-failure
RestartSec=2
Environment=PYTHONUNBUFFERED=1
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={_systemd_quote(str(plan.data_dir))}
PrivateTmp=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictRealtime=yes

[Install]
WantedBy=default.target
"""


def _systemd_quote(word: str) -> str:
    """A word of an Exec line or a path setting: quoted when it holds spaces, `$` and `%` escaped."""
    word = word.replace("%", "%%").replace("$", "$$")
    return f'"{word}"' if any(c in word for c in " \t\"'\\") else word


def launchd_plist(plan: Plan, log: Path) -> bytes:
    """The launchd agent: started at login, restarted unless it exited cleanly, its output in `log`."""
    return plistlib.dumps({
        "Label": LABEL,
        "ProgramArguments": plan.arguments,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ExitTimeOut": int(plan.shutdown_timeout) + 15,  # SIGTERM, then this long before SIGKILL
        "ProcessType": "Background",
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "Umask": 0o077,
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    })


def unit_path() -> Path:
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "systemd" / "user" / UNIT


def plist_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def log_path() -> Path:
    return Path.home() / "Library" / "Logs" / "noorapi" / "daemon.log"


def _platform(chosen: str | None) -> str:
    return chosen or ("launchd" if sys.platform == "darwin" else "systemd")


def _run(*command: str) -> int:
    """Run a service manager's command in the foreground, its output the user's."""
    if shutil.which(command[0]) is None:
        fail(f"`{command[0]}` is not installed: is this machine running {'launchd' if command[0] == 'launchctl' else 'systemd'}?",
             EXIT_API_ERROR)
    click.echo("$ " + shlex.join(command), err=True)
    return subprocess.call(list(command))


def _target() -> str:
    return f"gui/{os.getuid()}"


def _executable() -> Path:
    """The `noor` beside this Python (a venv's, pipx's or uv's), so the service runs this very install."""
    beside = Path(sys.executable).with_name("noor")
    found = beside if beside.exists() else shutil.which("noor")
    if not found:
        fail("cannot find the `noor` executable to run; install NoorAPI with pip, pipx or uv first", EXIT_USAGE)
    return Path(found).absolute()


platform_option = click.option(
    "--platform", type=click.Choice(["systemd", "launchd"]), default=None, hidden=True,
    help="The service manager [default: launchd on macOS, systemd elsewhere].",
)


@click.group()
def service() -> None:
    """Run the daemon as a user service (systemd on Linux, launchd on macOS)."""


@service.command("install")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="NOOR_CONFIG",
              help="The config the service runs with [env: NOOR_CONFIG; default: the user config file].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, envvar="NOOR_DATA_DIR",
              help="Where its ledger lives [env: NOOR_DATA_DIR].")
@click.option("--dry-run", is_flag=True, help="Print the unit (or plist) and where it would go; change nothing.")
@click.option("--no-start", is_flag=True, help="Enable it for the next login without starting it now.")
@platform_option
def install(config_path: str | None, data_dir: str | None, dry_run: bool, no_start: bool, platform: str | None) -> None:
    """Write the service, enable it at login and start it (restarted on failure; SIGTERM stops it gracefully)."""
    from noor_daemon.config import ConfigError, config_file, load

    try:
        file = config_file(config_path)
        shutdown_timeout = load(file).config.server.shutdown_timeout if file else 30.0
    except ConfigError as exc:
        fail(f"{exc} (check it with `noor config check`)", EXIT_USAGE)
    plan = Plan(_executable(), file.absolute() if file else None, paths.data_dir(data_dir).absolute(), shutdown_timeout)
    manager = _platform(platform)
    if manager == "launchd":
        path, content = plist_path(), launchd_plist(plan, log_path())
    else:
        path, content = unit_path(), systemd_unit(plan).encode()
    if dry_run:
        click.echo(f"# {path}", err=True)
        click.echo(content.decode(), nl=False)
        return
    try:
        paths.ensure_private_dir(plan.data_dir)  # the unit's ReadWritePaths must exist before it starts
    except paths.UnsafeDirectory as exc:
        fail(str(exc), EXIT_USAGE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    click.echo(f"Wrote {path}", err=True)
    if manager == "launchd":
        log_path().parent.mkdir(parents=True, exist_ok=True)
        if no_start:
            click.echo(f"It starts at the next login; now: launchctl bootstrap {_target()} {path}")
            return
        code = _run("launchctl", "bootstrap", _target(), str(path))
    else:
        code = _run("systemctl", "--user", "daemon-reload")
        if code == 0:
            code = _run("systemctl", "--user", "enable", *([] if no_start else ["--now"]), UNIT)
    if code != 0:
        fail(f"the service manager refused (exit {code}); the file stays at {path}", EXIT_API_ERROR)
    click.echo("Installed." + ("" if manager == "launchd" else
               " `noor service logs -f` follows its log; `loginctl enable-linger` keeps it running after you log out."))


@service.command("uninstall")
@click.option("--dry-run", is_flag=True, help="Say what would be stopped and removed; change nothing.")
@platform_option
def uninstall(dry_run: bool, platform: str | None) -> None:
    """Stop the service, disable it and remove its file (the data dir and config stay)."""
    manager = _platform(platform)
    path = plist_path() if manager == "launchd" else unit_path()
    if dry_run:
        click.echo(f"would stop the service and remove {path}")
        return
    if not path.exists():
        fail(f"no service installed ({path} does not exist)", EXIT_USAGE)
    if manager == "launchd":
        _run("launchctl", "bootout", f"{_target()}/{LABEL}")
        path.unlink()
    else:
        _run("systemctl", "--user", "disable", "--now", UNIT)
        path.unlink()
        _run("systemctl", "--user", "daemon-reload")
    click.echo(f"Removed {path}; the data dir and the config are kept.")


@service.command("status")
@platform_option
def status(platform: str | None) -> None:
    """The service manager's view of the service (exit 0 while it runs)."""
    if _platform(platform) == "launchd":
        raise click.exceptions.Exit(_run("launchctl", "print", f"{_target()}/{LABEL}"))
    raise click.exceptions.Exit(_run("systemctl", "--user", "status", "--no-pager", UNIT))


@service.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", type=click.IntRange(1), default=100, show_default=True, help="How many recent lines.")
@platform_option
def logs(follow: bool, lines: int, platform: str | None) -> None:
    """The daemon's log: the journal on Linux, its log file on macOS (never message content: the daemon logs none)."""
    if _platform(platform) == "launchd":
        raise click.exceptions.Exit(_run("tail", "-n", str(lines), *(["-F"] if follow else []), str(log_path())))
    raise click.exceptions.Exit(
        _run("journalctl", "--user-unit", UNIT, "-n", str(lines), "--no-pager", *(["-f"] if follow else []))
    )
