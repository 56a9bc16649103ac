"""The usage event: what the ledger learns about one call. No content, ever."""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(slots=True)
class UsageEvent:
    ts: int
    """Milliseconds since the epoch, when the call arrived."""
    model: str
    endpoint: str
    status: int
    latency_ms: float
    account_id: str | None = None
    key_id: str | None = None
    provider: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    stream: bool = False
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def row(self) -> tuple:
        return (
            self.ts,
            self.account_id,
            self.key_id,
            self.model,
            self.provider,
            self.endpoint,
            self.status,
            self.prompt_tokens,
            self.completion_tokens,
            self.latency_ms,
            self.ttft_ms,
            int(self.stream),
            int(self.estimated),
        )


@dataclass(slots=True)
class RouteSample:
    """One failed attempt at an upstream that the call then left for another route.

    It counts in the route rollups (routing learns from it) but is not a usage row: the
    caller is charged once, for the attempt that answered.
    """

    ts: int
    provider: str
    model: str
    status: int
    latency_ms: float


INSERT_EVENT = """
INSERT INTO usage_events (ts, account_id, key_id, model, provider, endpoint, status,
    prompt_tokens, completion_tokens, latency_ms, ttft_ms, stream, estimated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

UPSERT_USAGE_HOURLY = """
INSERT INTO usage_hourly (hour, account_id, key_id, model, requests, errors,
    prompt_tokens, completion_tokens, latency_ms_sum)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, account_id, key_id, model) DO UPDATE SET
    requests = usage_hourly.requests + excluded.requests,
    errors = usage_hourly.errors + excluded.errors,
    prompt_tokens = usage_hourly.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_hourly.completion_tokens + excluded.completion_tokens,
    latency_ms_sum = usage_hourly.latency_ms_sum + excluded.latency_ms_sum
"""

UPSERT_USAGE_DAILY = """
INSERT INTO usage_daily (day, account_id, key_id, model, requests, errors,
    prompt_tokens, completion_tokens, latency_ms_sum)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, account_id, key_id, model) DO UPDATE SET
    requests = usage_daily.requests + excluded.requests,
    errors = usage_daily.errors + excluded.errors,
    prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
    latency_ms_sum = usage_daily.latency_ms_sum + excluded.latency_ms_sum
"""

UPSERT_ROUTE_HOURLY = """
INSERT INTO route_hourly (hour, provider, model, requests, errors, prompt_tokens,
    completion_tokens, latency_ms_sum, ttft_ms_sum, ttft_count)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, provider, model) DO UPDATE SET
    requests = route_hourly.requests + excluded.requests,
    errors = route_hourly.errors + excluded.errors,
    prompt_tokens = route_hourly.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = route_hourly.completion_tokens + excluded.completion_tokens,
    latency_ms_sum = route_hourly.latency_ms_sum + excluded.latency_ms_sum,
    ttft_ms_sum = route_hourly.ttft_ms_sum + excluded.ttft_ms_sum,
    ttft_count = route_hourly.ttft_count + excluded.ttft_count
"""


def rollup_rows(events: list[UsageEvent], samples: list[RouteSample] = ()) -> tuple[list[tuple], list[tuple]]:
    """Fold a batch into per-account and per-route hourly increments.

    Rolling up in Python first means one upsert per (hour, account, key, model) per batch
    rather than one per event.
    """
    usage: dict[tuple, list] = {}
    routes: dict[tuple, list] = {}
    for e in events:
        hour = e.ts - e.ts % HOUR_MS
        err = 1 if e.is_error else 0
        u = usage.setdefault((hour, e.account_id or "", e.key_id or "", e.model), [0, 0, 0, 0, 0.0])
        u[0] += 1
        u[1] += err
        u[2] += e.prompt_tokens
        u[3] += e.completion_tokens
        u[4] += e.latency_ms
        if e.provider:
            r = routes.setdefault((hour, e.provider, e.model), [0, 0, 0, 0, 0.0, 0.0, 0])
            r[0] += 1
            r[1] += err
            r[2] += e.prompt_tokens
            r[3] += e.completion_tokens
            r[4] += e.latency_ms
            if e.ttft_ms is not None:
                r[5] += e.ttft_ms
                r[6] += 1
    for sample in samples:
        r = routes.setdefault((sample.ts - sample.ts % HOUR_MS, sample.provider, sample.model), [0, 0, 0, 0, 0.0, 0.0, 0])
        r[0] += 1
        r[1] += 1
        r[4] += sample.latency_ms
    return ([k + tuple(v) for k, v in usage.items()], [k + tuple(v) for k, v in routes.items()])


def daily_rows(hourly: list[tuple]) -> list[tuple]:
    """`usage_daily` increments from a batch's `usage_hourly` ones (`rollup_rows`' first list), for the
    same transaction: a batch within one day (nearly all) gives as many daily rows as hourly ones."""
    daily: dict[tuple, list] = {}
    for hour, account_id, key_id, model, *sums in hourly:
        key = (hour - hour % DAY_MS, account_id, key_id, model)
        d = daily.get(key)
        if d is None:
            daily[key] = sums
        else:
            for i, value in enumerate(sums):
                d[i] += value
    return [k + tuple(v) for k, v in daily.items()]
