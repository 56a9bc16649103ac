"""One line of the usage totals in full: its totals and cost, its busiest bucket, and each bucket's figures."""

from __future__ import annotations

from datetime import tzinfo

from noor_daemon.client import UsageLine, UsageSeries
from noor_tui.formatting import cost_text, date_time, integer, money, percent, si
from noor_tui.widgets.detail import DetailScreen, Section, listing


def usage_detail(line: UsageLine, series: UsageSeries, group_label: str, tz: tzinfo | None) -> DetailScreen:
    t = line.totals
    currency = series.currency
    rows = [
        (group_label, line.label), ("Id", line.key), ("Range", f"{date_time(series.start, tz)} → {date_time(series.end, tz)}"),
        ("Requests", integer(t.requests)), ("Errors", f"{integer(t.errors)} ({percent(t.errors / t.requests if t.requests else None)})"),
        ("Tokens in", si(t.prompt_tokens)), ("Tokens out", si(t.completion_tokens)),
        ("Estimated cost", cost_text(t.cost, t.unpriced_models, currency)),
    ]
    if t.unpriced_models:
        rows.append(("Unpriced models", ", ".join(t.unpriced_models) + " (their calls are not in the cost)"))
    if line.account_id and line.account_id != line.key:
        rows.insert(2, ("Account", line.account_id))
    busy = [(bucket, r, e, p, c, cost) for bucket, r, e, p, c, cost in
            zip(series.buckets, line.requests, line.errors, line.prompt_tokens, line.completion_tokens, line.cost, strict=False) if r]
    sections = [Section("Totals", rows)]
    if busy:
        table = listing("Bucket", "Requests", "Errors", "In", "Out", "Cost")
        priced = t.cost is not None
        for bucket, requests, errors, prompt, completion, cost in busy[-24:]:
            table.add_row(date_time(bucket, tz), integer(requests), integer(errors), si(prompt), si(completion),
                          money(cost, currency) if priced else "unpriced")
        note = f"The last {min(24, len(busy))} of {len(busy)} buckets with calls." if len(busy) > 24 else ""
        sections.append(Section("By bucket", table=table, note=note))
    return DetailScreen(f"Usage · {line.label}", sections, copy=line.key)
