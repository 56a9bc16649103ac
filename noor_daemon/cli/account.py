"""`noor account …`: accounts hold an email address and a plan, nothing more."""

from __future__ import annotations

import click

from noor_daemon.cli.common import (
    EXIT_USAGE,
    connection_options,
    fail,
    json_option,
    print_json,
    print_table,
    run_admin,
    short_time,
)


@click.group()
def account() -> None:
    """Create, list and delete accounts."""


@account.command("create")
@click.argument("email")
@click.option("--plan", default=None, help="The plan's name [default: the config's default_plan].")
@json_option
@connection_options
def create(email: str, plan: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Create an account for EMAIL."""
    created = run_admin(url, data_dir, lambda admin: admin.create_account(email, plan))
    if as_json:
        print_json(created.to_json())
    else:
        click.echo(f"Created account {created.email} ({created.id}, plan {created.plan}).")


@account.command("list")
@json_option
@connection_options
def list_(as_json: bool, url: str, data_dir: str | None) -> None:
    """List all accounts."""
    accounts = run_admin(url, data_dir, lambda admin: admin.list_accounts())
    if as_json:
        print_json([a.to_json() for a in accounts])
    elif not accounts:
        click.echo("No accounts yet. Create one with `noor account create EMAIL`.")
    else:
        rows = [(a.id, a.email, a.plan, a.status, short_time(a.created_at)) for a in accounts]
        print_table(("ID", "EMAIL", "PLAN", "STATUS", "CREATED"), rows)


@account.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Confirm: the account, its keys and its usage are deleted for good.")
@json_option
@connection_options
def delete(email: str, yes: bool, as_json: bool, url: str, data_dir: str | None) -> None:
    """Delete the account EMAIL (or an account id) with its keys and usage."""
    if not yes:
        fail(f"not deleting {email}: this removes the account, its keys and its usage for good; add --yes", EXIT_USAGE)
    account_id = run_admin(url, data_dir, lambda admin: admin.delete_account(email))
    if as_json:
        print_json({"id": account_id, "deleted": True})
    else:
        click.echo(f"Deleted account {email} ({account_id}) with its keys and usage.")


@account.command("email")
@click.argument("email")
@click.argument("new_email")
@json_option
@connection_options
def email(email: str, new_email: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Correct the address of the account EMAIL to NEW_EMAIL.

    The new address gets a confirmation mail; the change is audited (without either address)
    and recorded as a correction request.
    """
    changed = run_admin(url, data_dir, lambda admin: admin.change_email(email, new_email))
    if as_json:
        print_json(changed.to_json())
    else:
        click.echo(f"Account {changed.id} now uses {changed.email}; a confirmation mail goes to it.")
