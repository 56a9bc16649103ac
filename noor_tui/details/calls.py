"""A metered call in full: every field the live feed carries (its cost too), and for a refused call what refused it.

The feed carries the status, not the daemon's reason: a 401, 403 or 413 says which check refused the
call by itself; for a 429 the account's limits are asked now, and those that are full are named, with
its budgets (a budget refuses a call whose worst case does not fit in what is left, before it is spent).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from noor_daemon.client import AdminClient, CallEvent
from noor_tui.formatting import date_time, duration_ms, integer, money, until
from noor_tui.widgets.detail import DetailScreen, Section, listing
from noor_tui.widgets.quota import LIMIT_NAMES, amount_text, used_text

REFUSALS = {
    401: "Authentication: the key was unknown, revoked, expired or mistyped (or the address is cooling off after bad keys).",
    403: "Permission: the key or its account is suspended, or the key may not use this model.",
    404: "The model is not configured on this daemon.",
    413: "The request body was over the daemon's size limit ([server] max_body_bytes).",
}


def call_cost(event: CallEvent, currency: str) -> str:
    """What the call cost as metered: "unpriced" for tokens of a model nobody priced, never a made-up $0."""
    if event.cost is not None:
        return money(event.cost, currency)
    return "unpriced: no price for this model (noor prices)" if event.total_tokens else "–"


def call_fields(event: CallEvent, account_label: str, tz: tzinfo | None, currency: str = "USD") -> Section:
    return Section(
        "Call",
        [
            ("Sequence", str(event.seq)), ("Time", f"{date_time(event.ts, tz)}  ({event.ts})"), ("Account", account_label),
            ("Key", event.key_prefix), ("Model", event.model), ("Provider", event.provider), ("Endpoint", event.endpoint),
            ("Status", str(event.status)), ("Prompt tokens", integer(event.prompt_tokens)),
            ("Completion tokens", integer(event.completion_tokens)),
            ("Tokens", integer(event.total_tokens) + (" (estimated: the upstream reported none)" if event.estimated else "")),
            ("Cost", call_cost(event, currency)),
            ("Latency", duration_ms(event.latency_ms)), ("Time to first token", duration_ms(event.ttft_ms)),
            ("Streamed", event.stream),
        ],
        note="Ids and numbers only: NoorAPI keeps no message content.",
    )


def refusal_section(event: CallEvent) -> Section | None:
    if event.status in REFUSALS:
        return Section("Refused by", note=REFUSALS[event.status])
    if event.status >= 500:
        upstream = f" {event.provider}" if event.provider else ""
        return Section("Failed", note=f"The upstream{upstream} failed or timed out on every route tried ({event.status}).")
    return None


def call_detail(
    admin: AdminClient | None, event: CallEvent, account_label: str, tz: tzinfo | None, now: datetime, currency: str = "USD"
) -> DetailScreen:
    sections = [call_fields(event, account_label, tz, currency)]
    refused = refusal_section(event)
    if refused is not None:
        sections.append(refused)
    load = None
    if event.status == 429 and admin is not None and event.account_id:

        async def load() -> list[Section]:
            report = await admin.account_quota(event.account_id)
            rows = [("account", row) for row in report.limits]
            rows += [(kq.key.prefix, row) for kq in report.keys if kq.key.prefix == event.key_prefix for row in kq.limits]
            full = [(scope, row) for scope, row in rows if row.value and row.used >= row.value and not row.is_budget]
            budgets = [(scope, row) for scope, row in rows if row.is_budget]
            sections = []
            if full:
                table = listing("Scope", "Limit", "Used / limit", "Resets")
                for scope, row in full:
                    table.add_row(scope, LIMIT_NAMES.get(row.limit, row.limit), used_text(row, report.currency),
                                  until(row.resets_at, now) if row.resets_at else "–")
                sections.append(Section("Refused by a limit (429): full now", table=table))
            else:
                sections.append(Section("Refused by a limit (429)", note=(
                    "No limit of this account or key is full now: a per-minute rate that has refilled since, "
                    "or the concurrency limit, refused it" + (", or a budget (below)." if budgets else "."))))
            if budgets:
                table = listing("Scope", "Budget", "Spent", "Left", "Resets")
                for scope, row in budgets:
                    table.add_row(scope, LIMIT_NAMES.get(row.limit, row.limit), used_text(row, report.currency),
                                  amount_text(row, row.remaining, report.currency), until(row.resets_at, now) if row.resets_at else "–")
                sections.append(Section("Budgets now", table=table, note=(
                    "A budget refuses a call whose worst case (its whole prompt and max_tokens of output, priced) "
                    "does not fit in what is left, before the budget is spent.")))
            return sections

    return DetailScreen(f"Call {event.seq} · {event.status}", sections, copy=str(event.seq), load=load)
