"""/metrics counts what the ledger committed, per model and provider, with no account or key in it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.metrics import Metrics

pytestmark = pytest.mark.engine_independent


class _Ledger:
    healthy = True
    batches_committed = 2
    events_committed = 4


def event(model: str, status: int = 200, prompt: int = 0, completion: int = 0, ttft: float | None = None) -> UsageEvent:
    return UsageEvent(ts=0, model=model, endpoint="chat/completions", status=status, latency_ms=20.0,
                      account_id="acct_secret", key_id="key_secret", provider="p", prompt_tokens=prompt,
                      completion_tokens=completion, ttft_ms=ttft)


def samples(metrics: Metrics) -> dict[tuple, float]:
    text = generate_latest(metrics.registry).decode()
    assert "acct_secret" not in text and "key_secret" not in text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_committed_batches_are_counted_exactly_across_batches():
    metrics = Metrics(lambda: [], _Ledger())
    metrics.on_commit([event("a", prompt=10, completion=5), event("a", status=429)])
    metrics.on_commit([event("a", prompt=1, completion=2, ttft=7.0), event("b", prompt=3)])
    found = samples(metrics)
    labels = lambda **kw: tuple(sorted(kw.items()))  # noqa: E731
    assert found[("noor_requests_total", labels(model="a", provider="p", endpoint="chat/completions", status="200"))] == 2
    assert found[("noor_requests_total", labels(model="a", provider="p", endpoint="chat/completions", status="429"))] == 1
    assert found[("noor_requests_total", labels(model="b", provider="p", endpoint="chat/completions", status="200"))] == 1
    assert found[("noor_tokens_total", labels(model="a", provider="p", kind="prompt"))] == 11
    assert found[("noor_tokens_total", labels(model="a", provider="p", kind="completion"))] == 7
    assert found[("noor_tokens_total", labels(model="b", provider="p", kind="prompt"))] == 3
    assert ("noor_tokens_total", labels(model="b", provider="p", kind="completion")) not in found  # never a zero series
    assert found[("noor_request_latency_seconds_count", labels(model="a", provider="p"))] == 3
    assert found[("noor_time_to_first_token_seconds_count", labels(model="a", provider="p"))] == 1
    assert ("noor_time_to_first_token_seconds_count", labels(model="b", provider="p")) not in found


@given(st.lists(st.sampled_from([0.005, 0.01, 1.0, 120.0]) | st.floats(0, 500, allow_nan=False), max_size=40))
def test_latency_buckets_are_those_prometheus_client_would_count(latencies: list[float]):
    """The tallies are plain dicts read at scrape time; their histograms must read as prometheus_client's own
    (a value equal to a bucket's bound counts in it, `le`)."""
    from prometheus_client import CollectorRegistry, Histogram

    from noor_daemon.metrics import _LATENCY_BUCKETS

    metrics = Metrics(lambda: [], _Ledger())
    reference_registry = CollectorRegistry()
    reference = Histogram("noor_request_latency_seconds", "Whole-call latency", ["model", "provider"],
                          buckets=_LATENCY_BUCKETS, registry=reference_registry)
    for latency in latencies:
        metrics.on_commit([UsageEvent(ts=0, model="m", endpoint="chat/completions", status=200, latency_ms=latency * 1000,
                                      provider="p")])
        reference.labels("m", "p").observe(latency * 1000 / 1000)
    ours = {k: v for k, v in samples(metrics).items() if k[0].startswith("noor_request_latency_seconds")}
    theirs = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(reference_registry).decode())
        for sample in family.samples
        if sample.name.startswith("noor_request_latency_seconds") and not sample.name.endswith("_created")
    }
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value), key
