"""The dashboard's answers: the live feed, overview, upstream health, usage series, quotas and the catalog.

Split from models.py because they describe views over the live state and the rollups rather
than stored objects; the parsers that build them live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import Account, KeyInfo, _from_json


@dataclass(frozen=True)
class CallEvent:
    """One metered call from the live feed: ids and numbers only, never content or an email."""

    seq: int
    ts: str
    ts_ms: int
    account_id: str | None
    key_prefix: str | None
    model: str
    provider: str | None
    endpoint: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None
    stream: bool
    estimated: bool
    cost: float | None = None
    """In the daemon's currency, at the prices of the call's day; None when nobody priced its model."""

    @property
    def total_tokens(self) -> int:
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


@dataclass(frozen=True)
class FeedGap:
    """The daemon skipped `dropped` calls for this reader, which had fallen behind."""

    dropped: int


@dataclass(frozen=True)
class MetricsSummary:
    seconds: float
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    rpm: float
    tpm: float
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None


@dataclass(frozen=True)
class Overview:
    now: str
    window_seconds: int
    step_seconds: int
    start: str
    series: dict[str, list[float | None]]
    """requests, errors, tokens, rpm, tpm, error_rate, latency_p50_ms, latency_p95_ms, ttft_p50_ms: one value per step."""
    window: MetricsSummary
    last_minute: MetricsSummary
    loading: bool
    feed: dict[str, Any]


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    kind: str
    host: str | None
    routes: int
    requests: int
    errors: int
    error_rate: float | None
    latency_ms: float | None
    state: str
    """ok, degraded, down or idle."""


@dataclass(frozen=True)
class RouteStatus:
    provider: str
    model: str
    upstream_model: str
    breaker: str | None
    consecutive_failures: int
    requests: int
    errors: int
    error_rate: float | None
    latency_ms: float | None
    ttft_ms: float | None
    state: str


@dataclass(frozen=True)
class Upstreams:
    since: str
    now: str
    providers: list[ProviderHealth]
    routes: list[RouteStatus]


@dataclass(frozen=True)
class SeriesTotals:
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    unpriced_models: list[str]


@dataclass(frozen=True)
class UsageLine:
    """One group's series: `key` is the model, key id or account id; `(other)` folds the rest."""

    key: str
    label: str
    account_id: str | None
    requests: list[int]
    errors: list[int]
    prompt_tokens: list[int]
    completion_tokens: list[int]
    totals: SeriesTotals
    cost: list[float]
    """Per bucket, of the calls that were priced (an unpriced model adds 0: see `totals.unpriced_models`)."""

    @property
    def tokens(self) -> list[int]:
        return [p + c for p, c in zip(self.prompt_tokens, self.completion_tokens, strict=True)]


@dataclass(frozen=True)
class UsageSeries:
    range: str
    group: str
    bucket_seconds: int
    start: str
    end: str
    now: str
    buckets: list[str]
    source: str
    series: list[UsageLine]
    groups: int
    totals: SeriesTotals
    priced: bool
    currency: str = "USD"
    """Of every cost here: the daemon's `[budgets] currency`."""


@dataclass(frozen=True)
class LimitStatus:
    scope: str
    scope_id: str
    limit: str
    value: float
    """A whole number, or for a budget (`budget_per_day`, `budget_per_month`) an amount in the report's currency."""
    used: float
    remaining: float
    resets_at: str | None

    @property
    def is_budget(self) -> bool:
        return self.limit.startswith("budget_")


@dataclass(frozen=True)
class KeyQuota:
    key: KeyInfo
    """The key as listed, but `key.limits` is None: in a quota report the key's `limits` are its limit rows (below)."""
    limits: list[LimitStatus]


@dataclass(frozen=True)
class QuotaReport:
    account: Account
    limits: list[LimitStatus]
    keys: list[KeyQuota]
    currency: str = "USD"
    """Of the budgets' rows: the daemon's `[budgets] currency`."""


@dataclass(frozen=True)
class Catalog:
    plans: dict[str, dict[str, Any]]
    """Plan name to its limits (only those set)."""
    default_plan: str
    models: list[str]
    prices: dict[str, dict[str, float]]
    """Model (or glob) to `input_per_million` and `output_per_million`."""
    billing_configured: bool
    retention_days: int | None
    currency: str = "USD"
    """Of costs and budgets: the daemon's `[budgets] currency`."""


def _summary(data: dict[str, Any]) -> MetricsSummary:
    return _from_json(MetricsSummary, data)


def _overview(data: dict[str, Any]) -> Overview:
    return Overview(
        now=data["now"],
        window_seconds=data["window_seconds"],
        step_seconds=data["step_seconds"],
        start=data["start"],
        series=data["series"],
        window=_summary(data["window"]),
        last_minute=_summary(data["last_minute"]),
        loading=bool(data.get("loading")),
        feed=data.get("feed") or {},
    )


def _upstreams(data: dict[str, Any]) -> Upstreams:
    return Upstreams(
        since=data["since"],
        now=data["now"],
        providers=[_from_json(ProviderHealth, p) for p in data["providers"]],
        routes=[_from_json(RouteStatus, r) for r in data["routes"]],
    )


def _totals(data: dict[str, Any]) -> SeriesTotals:
    return SeriesTotals(
        requests=data["requests"],
        errors=data["errors"],
        prompt_tokens=data["prompt_tokens"],
        completion_tokens=data["completion_tokens"],
        cost=data.get("cost"),
        unpriced_models=list(data.get("unpriced_models") or []),
    )


def _usage_series(data: dict[str, Any]) -> UsageSeries:
    lines = [
        UsageLine(
            key=s["key"],
            label=s.get("label") or s["key"],
            account_id=s.get("account_id"),
            requests=s["requests"],
            errors=s["errors"],
            prompt_tokens=s["prompt_tokens"],
            completion_tokens=s["completion_tokens"],
            totals=_totals(s["totals"]),
            cost=list(s.get("cost") or [0.0] * len(s["requests"])),
        )
        for s in data["series"]
    ]
    return UsageSeries(
        range=data["range"],
        group=data["group"],
        bucket_seconds=data["bucket_seconds"],
        start=data["start"],
        end=data["end"],
        now=data["now"],
        buckets=data["buckets"],
        source=data["source"],
        series=lines,
        groups=data.get("groups", len(lines)),
        totals=_totals(data["totals"]),
        priced=bool(data["totals"].get("priced")),
        currency=data.get("currency") or "USD",
    )


def _quota(data: dict[str, Any]) -> QuotaReport:
    return QuotaReport(
        account=_from_json(Account, data["account"]),
        limits=[_from_json(LimitStatus, row) for row in data["limits"]],
        keys=[
            KeyQuota(
                _from_json(KeyInfo, {**k, "limits": None}), [_from_json(LimitStatus, row) for row in k.get("limits") or []]
            )
            for k in data["keys"]
        ],
        currency=data.get("currency") or "USD",
    )


def _catalog(data: dict[str, Any]) -> Catalog:
    return Catalog(
        plans=data["plans"],
        default_plan=data["default_plan"],
        models=data["models"],
        prices=data["prices"],
        billing_configured=bool(data.get("billing", {}).get("configured")),
        retention_days=data.get("retention_days"),
        currency=data.get("currency") or "USD",
    )
