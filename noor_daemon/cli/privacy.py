"""`noor privacy …`: answer a person's request for their data."""

from __future__ import annotations

import json

import click

from noor_daemon.cli.common import (
    EXIT_USAGE,
    ProgressBar,
    as_path,
    connection_options,
    fail,
    json_option,
    print_json,
    print_table,
    run_admin,
    short_time,
)
from noor_daemon.client import AdminClient, ExportResult


@click.group()
def privacy() -> None:
    """Data rights: export, requests and due dates, retention, the audit log, policy notices, mail."""


@privacy.command("export")
@click.argument("email")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the export (mode 0600).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True,
              help="json: account, api_keys and usage_events; csv: the usage events.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@json_option
@connection_options
def export(email: str, output: str, fmt: str, force: bool, as_json: bool, url: str, data_dir: str | None) -> None:
    """Export the account EMAIL's data into FILE, readable by you only."""
    target = as_path(output)
    bar = ProgressBar("Exporting usage events")

    async def run(admin: AdminClient) -> ExportResult:
        try:
            return await admin.export_account(email, target, format=fmt, progress=bar, overwrite=force)  # type: ignore[arg-type]
        finally:
            bar.close()

    try:
        result = run_admin(url, data_dir, run)
    except FileExistsError:
        fail(f"{target} already exists; add --force to replace it", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or type(exc).__name__}")
    if as_json:
        print_json(result.to_json())
    else:
        events = "" if result.events is None else f"{result.events} usage events, "
        click.echo(f"Wrote the export of {email} to {result.path} ({events}{result.bytes} bytes, mode 0600).", err=True)


# -- requests, retention, audit, policies, mail (data rights beyond export) ---------------


def _request_row(r) -> list:
    state = r.status + (" (overdue)" if r.overdue else "") + (" (awaiting confirmation)" if r.awaiting_confirmation else "")
    return [r.id, r.kind, r.account_id, r.source, state, r.received_at[:10], r.due_at[:10], (r.completed_at or "")[:10] or None]


@privacy.command("requests")
@click.option("--status", type=click.Choice(["open", "completed", "cancelled", "all"]), default="all", show_default=True)
@click.option("--kind", type=click.Choice(["access", "correction", "deletion"]), default=None)
@click.option("--account", default=None, metavar="EMAIL", help="One account (an erased one's email finds its pseudonym).")
@click.option("--overdue", is_flag=True, help="Only open requests past their 30-day due date.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@connection_options
def requests_(status: str, kind: str | None, account: str | None, overdue: bool, limit: int, as_json: bool, url: str, data_dir: str | None) -> None:
    """Access, correction and deletion requests, with their due dates (30 days after receipt)."""
    page = run_admin(
        url, data_dir,
        lambda admin: admin.privacy_requests(status=status, kind=kind, account=account, overdue=overdue, limit=limit),
    )
    if as_json:
        print_json({"data": [r.to_json() for r in page.data], "open": page.open, "overdue": page.overdue})
        return
    if page.data:
        print_table(("ID", "KIND", "ACCOUNT", "SOURCE", "STATUS", "RECEIVED", "DUE", "COMPLETED"), [_request_row(r) for r in page.data])
    else:
        click.echo("No privacy requests.", err=True)
    click.echo(f"{page.open} open, {page.overdue} overdue.", err=True)


@privacy.command("record")
@click.argument("kind", type=click.Choice(["access", "correction", "deletion"]))
@click.argument("email")
@click.option("--note", default=None, help="How it arrived, for your records (500 characters at most).")
@json_option
@connection_options
def record(kind: str, email: str, note: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Record a request received by mail or in person for the account EMAIL: open, due in 30 days."""
    request = run_admin(url, data_dir, lambda admin: admin.record_privacy_request(kind, email, note))
    if as_json:
        print_json(request.to_json())
    else:
        click.echo(f"Recorded {kind} request {request.id}, due {request.due_at[:10]}.")


@privacy.command("complete")
@click.argument("request_id", type=int)
@click.option("--note", default=None, help="How it was answered.")
@json_option
@connection_options
def complete(request_id: int, note: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Mark the privacy request REQUEST_ID answered."""
    request = run_admin(url, data_dir, lambda admin: admin.complete_privacy_request(request_id, note))
    if as_json:
        print_json(request.to_json())
    else:
        click.echo(f"Request {request.id} ({request.kind}) is {request.status}.")


@privacy.command("retention")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option("--status", "show_status", is_flag=True, help="Show the limit, the schedule and the last run instead.")
@json_option
@connection_options
def retention(dry_run: bool, show_status: bool, as_json: bool, url: str, data_dir: str | None) -> None:
    """Remove usage events and per-account rollups older than [retention] usage_days, now.

    The daemon does this by itself at start and hourly; this runs it at once.
    """
    if show_status:
        status = run_admin(url, data_dir, lambda admin: admin.retention_status())
        if as_json:
            print_json(status.to_json())
            return
        click.echo(f"Usage is kept {status.usage_days} days (older than {short_time(status.cutoff)} goes).")
        last = status.last_run
        if last:
            click.echo(
                f"Last run {short_time(last.ran_at)} by {last.actor}: {last.usage_events} usage events and "
                f"{last.usage_hourly} hourly rollups removed."
            )
        else:
            click.echo("No run yet.")
        return
    report = run_admin(url, data_dir, lambda admin: admin.run_retention(dry_run=dry_run))
    if as_json:
        print_json(report.to_json())
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {report.usage_events} usage events and {report.usage_hourly} hourly rollups older than "
        f"{report.usage_days} days (before {short_time(report.cutoff)})."
    )


@privacy.command("audit")
@click.option("--account", default=None, metavar="EMAIL", help="Entries about one account (an id works too).")
@click.option("--action", default=None, help="An action, or a pattern like 'key.*'.")
@json_option
@connection_options
def audit(account: str | None, action: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """The audit log, newest first: who did what, when. With --json, every entry as one JSON array."""

    async def run(admin: AdminClient) -> int:
        count = 0

        def write(text: str) -> None:
            click.echo(text, nl=False)

        if as_json:
            write("[")
        async for entry in admin.audit_entries(account=account, action=action):
            if as_json:
                write(("\n" if count == 0 else ",\n") + json.dumps(entry.to_json(), ensure_ascii=False))
            else:
                details = " ".join(f"{k}={v}" for k, v in (entry.details or {}).items())
                target = f"{entry.target_type}:{entry.target_id}" if entry.target_id else (entry.target_type or "-")
                write(f"{entry.id:>7}  {short_time(entry.ts)}  {entry.actor:<7} {entry.action:<28} {target}  {details}".rstrip() + "\n")
            count += 1
        if as_json:
            write("\n]\n" if count else "]\n")
        return count

    count = run_admin(url, data_dir, run)
    if not as_json:
        click.echo(f"{count} entries.", err=True)


@privacy.group("policy")
def policy() -> None:
    """Privacy policy versions and their notices."""


@policy.command("publish")
@click.option("--effective", required=True, metavar="DATE", help="When it takes effect: YYYY-MM-DD (midnight UTC).")
@click.option("--summary", required=True, metavar="TEXT", help="What changes, in a sentence or two; it goes into the notice.")
@click.option("--material/--minor", default=True, show_default=True,
              help="A material change needs 14 days' notice; a minor one (a clarification) does not.")
@click.option("--policy-url", "policy_url", default=None, metavar="URL", help="Where the full text is (it goes into the notice).")
@click.option("--no-notify", is_flag=True, help="Minor changes only: publish without mailing every account.")
@json_option
@connection_options
def publish(effective: str, summary: str, material: bool, policy_url: str | None, no_notify: bool, as_json: bool, url: str, data_dir: str | None) -> None:
    """Publish a policy version; every account gets a notice mail at once."""
    if material and no_notify:
        fail("a material change must be announced; --no-notify goes with --minor only", EXIT_USAGE)
    version = run_admin(
        url, data_dir,
        lambda admin: admin.publish_policy(effective=effective, summary=summary, material=material, url=policy_url, notify=not no_notify),
    )
    if as_json:
        print_json(version.to_json())
    else:
        kind = "material" if version.material else "minor"
        click.echo(
            f"Published version {version.version} ({kind}), effective {version.effective_at[:10]}; "
            f"{version.notices} notice mails queued."
        )


@policy.command("show")
@json_option
@connection_options
def show(as_json: bool, url: str, data_dir: str | None) -> None:
    """The current policy version and the upcoming ones."""
    overview = run_admin(url, data_dir, lambda admin: admin.policies())
    if as_json:
        print_json(overview.to_json())
        return
    rows = [
        [v.version, "current" if overview.current and v.version == overview.current.version else "upcoming",
         v.effective_at[:10], "material" if v.material else "minor", v.notices, v.summary]
        for v in ([overview.current] if overview.current else []) + overview.upcoming
    ]
    if rows:
        print_table(("VERSION", "STATE", "EFFECTIVE", "KIND", "NOTICES", "SUMMARY"), rows)
    else:
        click.echo("No policy version published yet.", err=True)


@privacy.command("mail")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
@connection_options
def mail(limit: int, as_json: bool, url: str, data_dir: str | None) -> None:
    """Transactional mail: how many are pending, sent, failed, and the latest (no addresses)."""
    summary = run_admin(url, data_dir, lambda admin: admin.mail_outbox(limit))
    if as_json:
        print_json(summary)
        return
    counts = summary["counts"]
    click.echo(f"Delivery: {summary['delivery']}. " + ", ".join(f"{n} {state}" for state, n in counts.items()) + ".")
    rows = [[m["id"], m["kind"], m["status"], m["attempts"], short_time(m["created_at"]), m["last_error"]] for m in summary["data"]]
    if rows:
        print_table(("ID", "KIND", "STATUS", "ATTEMPTS", "CREATED", "LAST ERROR"), rows)
