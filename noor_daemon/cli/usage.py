"""`noor usage …`: what was used, per model, from the daemon's hourly rollups."""

from __future__ import annotations

import click

from noor_daemon.cli.common import connection_options, json_option, print_json, print_table, run_admin
from noor_daemon.client import UsageSummary


@click.group(invoke_without_command=True)
@click.pass_context
def usage(ctx: click.Context) -> None:
    """Usage totals; alone, the last 24 hours' summary (as `noor usage summary`)."""
    if ctx.invoked_subcommand is None:
        with summary.make_context("summary", [], parent=ctx) as sub:  # parsed as if typed: NOOR_URL, the config's daemon
            summary.invoke(sub)


def print_summary(summary: UsageSummary) -> None:
    """The per-model table, with a total row; `noor demo` prints the same."""
    if not summary.models:
        click.echo(f"No usage in the last {summary.hours} h.")
        return
    rows = [
        (m.model or "(no model)", m.requests, m.errors, m.prompt_tokens, m.completion_tokens,
         f"{m.mean_latency_ms:.0f}" if m.mean_latency_ms is not None else None)
        for m in summary.models
    ]
    t = summary.totals
    rows.append(("TOTAL", t.requests, t.errors, t.prompt_tokens, t.completion_tokens, ""))
    click.echo(f"Usage in the last {summary.hours} h:")
    print_table(("MODEL", "REQUESTS", "ERRORS", "PROMPT TOKENS", "COMPLETION TOKENS", "MEAN LATENCY MS"), rows)


@usage.command("summary")
@click.option("--hours", type=click.IntRange(1, 24 * 366), default=24, show_default=True, help="How far back to look.")
@click.option("--account", "account_ref", default=None, metavar="EMAIL", help="Only this account.")
@json_option
@connection_options
def summary(hours: int, account_ref: str | None, as_json: bool, url: str, data_dir: str | None) -> None:
    """Requests, errors and tokens per model."""
    result = run_admin(url, data_dir, lambda admin: admin.usage_summary(hours, account_ref))
    if as_json:
        print_json(result.to_json())
    else:
        print_summary(result)
