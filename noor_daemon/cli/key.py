"""`noor key …`: API keys. The full key is printed once, at creation or rotation."""

from __future__ import annotations

import time
from datetime import datetime

import click

from noor_daemon.cli.common import (
    Duration,
    comma_list,
    connection_options,
    json_option,
    print_json,
    print_table,
    run_admin,
    short_time,
    show_issued_key,
)
from noor_daemon.client import AdminClient, KeyInfo

KEY_PREFIX = "sk-noor-"  # as noor_daemon.gateway.auth; the CLI stays an HTTP client
from noor_daemon.cli.limits import limit_option, parse_limits


@click.group()
def key() -> None:
    """Create, list, revoke and rotate API keys."""


@key.command("create")
@click.option("--account", "account_ref", required=True, metavar="EMAIL", help="The account (email or id) the key belongs to.")
@click.option("--name", default=None, help="A label, such as the machine or program using the key.")
@click.option("--models", default=None, metavar="A,B", help="Only these models (comma-separated) [default: all].")
@click.option("--expires", type=Duration(), default=None, metavar="DURATION", help="Expire after 90m, 12h, 30d, 2w…")
@limit_option
@json_option
@connection_options
def create(
    account_ref: str,
    name: str | None,
    models: str | None,
    expires: int | None,
    limits: tuple[str, ...],
    as_json: bool,
    url: str,
    data_dir: str | None,
) -> None:
    """Create a key; it is shown this once (with --json, in the field `key`)."""
    model_list = comma_list(models)
    overrides = parse_limits(limits)
    issued = run_admin(
        url,
        data_dir,
        lambda admin: admin.create_key(account_ref, name=name, models=model_list, expires_in=expires, limits=overrides),
    )
    if as_json:
        print_json(issued.to_json())
    else:
        label = f" ({issued.name})" if issued.name else ""
        show_issued_key(issued.key, f"Created key {issued.id}{label} for {account_ref}:")


@key.command("list")
@click.option("--account", "account_ref", default=None, metavar="EMAIL", help="Only this account's keys.")
@click.option("--stale", type=Duration(), default=None, metavar="DURATION",
              help="Only live keys unused (or, never used, created) longer than this: 90d, 12w…")
@json_option
@connection_options
def list_(account_ref: str | None, stale: int | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """List keys, masked: only a key's prefix is ever shown again."""

    async def fetch(admin: AdminClient) -> tuple[list[KeyInfo], dict[str, str]]:
        keys = await admin.list_keys(account_ref)
        emails = {} if as_json else {a.id: a.email for a in await admin.list_accounts()}
        return keys, emails

    keys, emails = run_admin(url, data_dir, fetch)
    if stale is not None:
        keys = stale_keys(keys, stale)
    if as_json:
        print_json([k.to_json() for k in keys])
        return
    if not keys and stale is not None:
        click.echo("No stale keys.")
        return
    if not keys:
        click.echo("No keys. Create one with `noor key create --account EMAIL`.")
        return
    rows = [
        (
            k.id,
            emails.get(k.account_id, k.account_id),
            k.name,
            k.masked,
            k.state,
            ",".join(k.models) if k.models is not None else "all",
            short_time(k.created_at),
            short_time(k.last_used_at),
            short_time(k.expires_at),
        )
        for k in keys
    ]
    print_table(("ID", "ACCOUNT", "NAME", "KEY", "STATE", "MODELS", "CREATED", "LAST USED", "EXPIRES"), rows)


def stale_keys(keys: list[KeyInfo], older_than: int, now: float | None = None) -> list[KeyInfo]:
    """Live keys whose last use (or, never used, creation) is more than `older_than` seconds ago."""
    cutoff = (time.time() if now is None else now) - older_than

    def last_activity(k: KeyInfo) -> float:
        stamp = k.last_used_at or k.created_at
        return datetime.fromisoformat(stamp).timestamp() if stamp else 0.0

    return [k for k in keys if k.state in ("active", "suspended") and last_activity(k) < cutoff]


@key.command("revoke")
@click.argument("key_id", metavar="ID|PREFIX")
@json_option
@connection_options
def revoke(key_id: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Revoke a key by its ID, or by its display prefix alone (sk-noor-AbC123); refused at once.

    A prefix that several live keys share is refused: revoke by ID then.
    """
    if key_id.startswith(KEY_PREFIX):
        revoked = run_admin(url, data_dir, lambda admin: admin.revoke_key_by_prefix(key_id))
    else:
        revoked = run_admin(url, data_dir, lambda admin: admin.revoke_key(key_id))
    if as_json:
        print_json(revoked.to_json())
    else:
        click.echo(f"Revoked key {revoked.id} ({revoked.masked}).")


@key.command("rotate")
@click.argument("key_id", metavar="ID")
@click.option("--grace", type=Duration(), default=None, metavar="DURATION",
              help="Keep the old key working this long (90m, 1h, 7d…) so its users can switch [default: revoke it at once].")
@json_option
@connection_options
def rotate(key_id: str, grace: int | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Issue the replacement of key ID, shown this once, and revoke the old key (at once, or after --grace)."""
    issued = run_admin(url, data_dir, lambda admin: admin.rotate_key(key_id, grace=grace))
    if as_json:
        print_json(issued.to_json())
    elif issued.previous_expires_at:
        show_issued_key(issued.key, f"{key_id} keeps working until {issued.previous_expires_at}; its replacement is {issued.id}:")
    else:
        show_issued_key(issued.key, f"Revoked {key_id}; its replacement is {issued.id}:")
