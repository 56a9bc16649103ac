"""One line of the usage totals in full: its totals, its busiest bucket, and each bucket's figures."""

from __future__ import annotations

from datetime import tzinfo

from noor_daemon.client import UsageLine, UsageSeries
from noor_tui.formatting import date_time, integer, money, percent, si
from noor_tui.widgets.detail import DetailScreen, Section, listing


def usage_detail(line: UsageLine, series: UsageSeries, group_label: str, tz: tzinfo | None) -> DetailScreen:
    t = line.totals
    rows = [
        (group_label, line.label), ("Id", line.key), ("Range", f"{date_time(series.start, tz)} → {date_time(series.end, tz)}"),
        ("Requests", integer(t.requests)), ("Errors", f"{integer(t.errors)} ({percent(t.errors / t.requests if t.requests else None)})"),
        ("Tokens in", si(t.prompt_tokens)), ("Tokens out", si(t.completion_tokens)),
        ("Estimated cost", money(t.cost) if t.cost is not None else "unpriced"),
    ]
    if line.account_id and line.account_id != line.key:
        rows.insert(2, ("Account", line.account_id))
    busy = [(bucket, r, e, p, c) for bucket, r, e, p, c in
            zip(series.buckets, line.requests, line.errors, line.prompt_tokens, line.completion_tokens, strict=False) if r]
    sections = [Section("Totals", rows)]
    if busy:
        table = listing("Bucket", "Requests", "Errors", "In", "Out")
        for bucket, requests, errors, prompt, completion in busy[-24:]:
            table.add_row(date_time(bucket, tz), integer(requests), integer(errors), si(prompt), si(completion))
        note = f"The last {min(24, len(busy))} of {len(busy)} buckets with calls." if len(busy) > 24 else ""
        sections.append(Section("By bucket", table=table, note=note))
    return DetailScreen(f"Usage · {line.label}", sections, copy=line.key)
