"""Abuse detection: bad-key floods per client address, and request spikes per key.

Both are in memory and O(1) per call. They only decide; writing flags to the audit log
happens off the request path.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from noor_daemon.clock import Clock
from noor_daemon.config import AbuseConfig
from noor_daemon.tls import is_loopback

_MAX_TRACKED = 100_000


class AuthFailures:
    """Counts failed authentications per address; past the threshold, the address cools off."""

    def __init__(self, config: AbuseConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}

    def exempt(self, address: str | None) -> bool:
        return address is None or (self.config.exempt_loopback and is_loopback(address))

    def blocked_for(self, address: str | None) -> float:
        """Seconds this address must still wait, or 0."""
        if address is None or not self._blocked:
            return 0.0
        until = self._blocked.get(address)
        if until is None:
            return 0.0
        left = until - self.clock.now()
        if left <= 0:
            del self._blocked[address]
            return 0.0
        return left

    def record_failure(self, address: str | None) -> bool:
        """Count one failure; True when this one tipped the address into a cooling-off period."""
        if self.exempt(address):
            return False
        assert address is not None
        now = self.clock.now()
        window = self._failures.get(address)
        if window is None:
            if len(self._failures) >= _MAX_TRACKED:
                self._failures.clear()  # a flood of distinct addresses must not grow memory without bound
            window = self._failures[address] = deque()
        window.append(now)
        while window and window[0] <= now - self.config.auth_failure_window:
            window.popleft()
        if len(window) >= self.config.auth_failure_threshold:
            self._blocked[address] = now + self.config.cooloff_seconds
            del self._failures[address]
            return True
        return False

    def blocked(self) -> dict[str, float]:
        now = self.clock.now()
        return {address: until - now for address, until in self._blocked.items() if until > now}


@dataclass(slots=True)
class _KeyRate:
    minute: int
    count: int = 0
    baseline: float = 0.0
    history: int = 0
    quiet_until: float = 0.0


@dataclass(frozen=True)
class Spike:
    key_id: str
    account_id: str
    requests_this_minute: int
    baseline_per_minute: float


class SpikeDetector:
    """Flags a key whose requests this minute jump far above its own recent per-minute baseline."""

    ALPHA = 0.2  # weight of the latest minute in the moving baseline (about a 5-minute memory)

    def __init__(self, config: AbuseConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._rates: dict[str, _KeyRate] = {}

    def observe(self, key_id: str, account_id: str) -> Spike | None:
        now = self.clock.now()
        minute = int(now // 60)
        state = self._rates.get(key_id)
        if state is None:
            state = self._rates[key_id] = _KeyRate(minute)
        elif minute != state.minute:
            elapsed = min(minute - state.minute, 60)
            for step in range(elapsed):
                observed = state.count if step == 0 else 0
                state.baseline += self.ALPHA * (observed - state.baseline)
            state.history += elapsed
            state.minute, state.count = minute, 0
        state.count += 1
        threshold = max(self.config.spike_min_requests, self.config.spike_factor * state.baseline)
        if state.count > threshold and now >= state.quiet_until:
            state.quiet_until = now + 600  # one flag per key per ten minutes
            return Spike(key_id, account_id, state.count, round(state.baseline, 2))
        return None
