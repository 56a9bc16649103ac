"""`noor spend` and `noor prices`: what was spent against the budgets, and what each model costs."""

from __future__ import annotations

import click

from noor_daemon.cli.common import connection_options, json_option, print_json, print_table, run_admin, short_time
from noor_daemon.client import Prices, Spend


def money(value: float | None) -> str | None:
    """Four decimals: one call often costs a fraction of a cent."""
    return None if value is None else f"{value:,.4f}"


def print_spend(result: Spend) -> None:
    click.echo(
        f"Spend this {result.period} ({short_time(result.start)} to {short_time(result.end)}) by {result.by}, "
        f"in {result.currency}:"
    )
    if not result.data:
        click.echo("Nothing spent yet.")
        return
    rows = [
        (line.label, line.requests, line.tokens, money(line.cost), money(line.budget), money(line.budget_left),
         line.unpriced_calls or "")
        for line in result.data
    ]
    rows.append(("TOTAL", sum(line.requests for line in result.data), sum(line.tokens for line in result.data),
                 money(result.total), "", "", sum(line.unpriced_calls for line in result.data) or ""))
    print_table((result.by.upper(), "REQUESTS", "TOKENS", "COST", "BUDGET", "LEFT", "UNPRICED CALLS"), rows)
    click.echo(f"({result.note})")


@click.command()
@click.option("--period", type=click.Choice(["day", "month"]), default="month", show_default=True,
              help="This calendar day or month (UTC), the periods budgets are kept in.")
@click.option("--by", "group", type=click.Choice(["account", "key", "model"]), default="account", show_default=True,
              help="One line per account, key or model.")
@json_option
@connection_options
def spend(period: str, group: str, as_json: bool, url: str, data_dir: str | None) -> None:
    """Cost this day or month per account, key or model, next to each budget and what is left of it."""
    result = run_admin(url, data_dir, lambda admin: admin.spend(period=period, by=group))
    if as_json:
        print_json(result.to_json())
    else:
        print_spend(result)


def print_prices(result: Prices) -> None:
    click.echo(f"Prices per million tokens, in {result.currency} (shipped table compiled {result.table_compiled}):")
    rows = [
        (p.model, p.provider, p.upstream_model, p.source or "UNPRICED", money(p.input_per_million),
         money(p.output_per_million), money(p.cached_input_per_million), money(p.cache_write_per_million))
        for p in result.data
    ]
    print_table(("MODEL", "PROVIDER", "UPSTREAM MODEL", "SOURCE", "INPUT", "OUTPUT", "CACHED INPUT", "CACHE WRITE"), rows)
    unpriced = result.unpriced
    if unpriced:
        click.echo(
            f"{len(unpriced)} route(s) have no price: their calls are counted as unpriced, and a key with a budget "
            "cannot call them. Price them under [prices] in the config."
        )


@click.command()
@json_option
@connection_options
def prices(as_json: bool, url: str, data_dir: str | None) -> None:
    """What each configured model costs now, where the price comes from, and which have none."""
    result = run_admin(url, data_dir, lambda admin: admin.prices())
    if as_json:
        print_json(result.to_json())
    else:
        print_prices(result)
