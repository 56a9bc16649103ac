"""Limits from the command line: key overrides, suspensions, quota status, abuse flags.

The commands join the `key` and `account` groups (`noor key suspend`, `noor account suspend`)
and add `noor quota` and `noor abuse`.
"""

from __future__ import annotations

import math

import click

from noor_daemon.cli.common import EXIT_USAGE, connection_options, fail, json_option, print_json, print_table, run_admin

LIMIT_NAMES = (
    "requests_per_minute",
    "tokens_per_minute",
    "concurrent_requests",
    "requests_per_day",
    "tokens_per_day",
    "tokens_per_month",
    "budget_per_day",
    "budget_per_month",
)


def parse_limits(values: tuple[str, ...]) -> dict[str, float]:
    """`--limit requests_per_minute=10`, `--limit budget_per_month=20.5` (repeatable) into a dict; a clear error
    otherwise. Budgets are amounts in the daemon's currency; every other limit a whole number."""
    limits: dict[str, float] = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            parsed: float = float(number) if name.startswith("budget_") else int(number)
        except ValueError:
            parsed = 0
        if name not in LIMIT_NAMES or not (parsed > 0 and math.isfinite(parsed)):
            fail(f"--limit {value!r}: expected NAME=N with N > 0 and NAME one of {', '.join(LIMIT_NAMES)}", EXIT_USAGE)
        limits[name] = parsed
    return limits


limit_option = click.option(
    "--limit", "limits", multiple=True, metavar="NAME=N",
    help=f"A tighter limit for this key (repeatable): {', '.join(LIMIT_NAMES)}; budgets in the currency.",
)


@click.command("limits")
@click.argument("key_id", metavar="ID")
@limit_option
@json_option
@connection_options
def key_limits(key_id: str, limits: tuple[str, ...], as_json: bool, url: str, data_dir: str | None) -> None:
    """Set the key ID's own limits (its account's plan still applies on top)."""
    parsed = parse_limits(limits)
    if not parsed:
        fail("give at least one --limit NAME=N", EXIT_USAGE)
    updated = run_admin(url, data_dir, lambda admin: admin.set_key_limits(key_id, parsed))
    if as_json:
        print_json(updated.to_json())
    else:
        click.echo(f"Key {updated.id} ({updated.masked}) limits: {updated.limits}")


@click.command("limits")
@click.argument("email")
@limit_option
@click.option("--clear", is_flag=True, help="Drop the account's own limits: its plan's apply again.")
@json_option
@connection_options
def account_limits(email: str, limits: tuple[str, ...], clear: bool, as_json: bool, url: str, data_dir: str | None) -> None:
    """Set the account EMAIL's own limits and budgets, replacing its plan's of the same name
    (`--limit budget_per_month=50`)."""
    parsed = {} if clear else parse_limits(limits)
    if not parsed and not clear:
        fail("give at least one --limit NAME=N, or --clear", EXIT_USAGE)
    account = run_admin(url, data_dir, lambda admin: admin.update_account(email, limits=parsed))
    if as_json:
        print_json(account.to_json())
    else:
        click.echo(f"Account {account.email} limits: {account.limits or 'those of its plan'}")


@click.command("suspend")
@click.argument("key_id", metavar="ID")
@click.option("--reason", default=None, help="Why, for the audit log.")
@json_option
@connection_options
def suspend_key(key_id: str, reason: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Suspend the key ID at once: its calls get 403 until unsuspended."""
    key = run_admin(url, data_dir, lambda admin: admin.suspend_key(key_id, reason))
    print_json(key.to_json()) if as_json else click.echo(f"Suspended key {key.id} ({key.masked}).")


@click.command("unsuspend")
@click.argument("key_id", metavar="ID")
@json_option
@connection_options
def unsuspend_key(key_id: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Lift the key ID's suspension."""
    key = run_admin(url, data_dir, lambda admin: admin.unsuspend_key(key_id))
    print_json(key.to_json()) if as_json else click.echo(f"Key {key.id} ({key.masked}) is active again.")


@click.command("suspend")
@click.argument("email")
@json_option
@connection_options
def suspend_account(email: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Suspend the account EMAIL at once: every key of it gets 403 until unsuspended."""
    account = run_admin(url, data_dir, lambda admin: admin.suspend_account(email))
    print_json(account.to_json()) if as_json else click.echo(f"Suspended account {account.email}.")


@click.command("unsuspend")
@click.argument("email")
@json_option
@connection_options
def unsuspend_account(email: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Lift the account EMAIL's suspension."""
    account = run_admin(url, data_dir, lambda admin: admin.unsuspend_account(email))
    print_json(account.to_json()) if as_json else click.echo(f"Account {account.email} is active again.")


def _limit_rows(rows: list[dict], scope: str) -> list[tuple]:
    return [(scope, r["limit"], r["value"], r["used"], r["remaining"], r["resets_at"] or "-") for r in rows]


@click.command("quota")
@click.argument("email")
@json_option
@connection_options
def quota(email: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Every limit of the account EMAIL and of its keys: used, remaining, reset time (UTC)."""
    report = run_admin(url, data_dir, lambda admin: admin.quota(email))
    if as_json:
        print_json(report)
        return
    account = report["account"]
    click.echo(f"{account['email']} — plan {account['plan']}, {account['status']}")
    rows = _limit_rows(report["limits"], "account")
    for key in report["keys"]:
        rows += _limit_rows(key["limits"], f"{key['masked']} ({key['state']})")
    if rows:
        print_table(("SCOPE", "LIMIT", "VALUE", "USED", "REMAINING", "RESETS AT"), rows)
    else:
        click.echo("No limits apply (the plan sets none).")


@click.command("abuse")
@json_option
@connection_options
def abuse(as_json: bool, url: str, data_dir: str | None) -> None:
    """Addresses cooling off after failed authentications, and recent abuse flags."""
    report = run_admin(url, data_dir, lambda admin: admin.abuse())
    if as_json:
        print_json(report)
        return
    blocked = report["blocked_addresses"]
    click.echo(f"{len(blocked)} address(es) cooling off" + (":" if blocked else "."))
    for row in blocked:
        click.echo(f"  {row['address']}  {row['seconds_left']:.0f}s left")
    if report["flags"]:
        print_table(
            ("TIME", "ACTION", "TARGET", "DETAILS"),
            [(f["ts"], f["action"], f"{f['target_type']} {f['target_id']}", f["details"] or "") for f in report["flags"]],
        )
