"""The dashboard's in-memory windows (the last hour of calls) hold only their window, fed by commits alone:
they prune when their horizon moves, not on every commit (a lone call's commit is a batch of one)."""

from __future__ import annotations

import pytest

from noor_daemon.clock import ManualClock
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.views.live import MetricsWindow
from noor_daemon.views.minutes import MinuteUsage

pytestmark = pytest.mark.engine_independent


def call(clock: ManualClock, **fields) -> UsageEvent:
    return UsageEvent(ts=int(clock.now() * 1000), model="m", endpoint="chat/completions", status=200, latency_ms=5.0,
                      account_id="acct_1", key_id="key_1", provider="p", prompt_tokens=3, completion_tokens=4, **fields)


@pytest.mark.parametrize("make, held, unit_ms", [
    (lambda clock: MetricsWindow(clock, seconds=3600, step=10), lambda window: window.buckets, 1000),  # keyed in seconds
    (lambda clock: MinuteUsage(clock, minutes=60), lambda window: window.data, 1),  # keyed in milliseconds
])
def test_a_window_fed_only_by_commits_keeps_one_hour(make, held, unit_ms) -> None:
    clock = ManualClock()
    window = make(clock)
    for _ in range(3 * 3600 // 7):  # three hours of calls, 7 s apart, each committed alone
        window.add([call(clock)])
        clock.advance(7)
    oldest_ms = min(held(window)) * unit_ms
    assert clock.now() * 1000 - oldest_ms <= (3600 + 60) * 1000, "older than the window and its last step"
    assert len(held(window)) <= 3600 // 10 + 1


def test_calls_in_the_same_step_are_all_counted() -> None:
    clock = ManualClock()
    window = MetricsWindow(clock, seconds=3600, step=10)
    for _ in range(25):
        window.add([call(clock)])
        clock.advance(1)
    assert sum(window.report(window=600, step=60)["series"]["requests"]) == 25
