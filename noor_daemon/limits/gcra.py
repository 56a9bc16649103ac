"""GCRA: the generic cell rate algorithm, the smooth rate limit behind requests and tokens per minute.

A bucket is one number, its theoretical arrival time (TAT). A limit of N per period
spaces units `period / N` apart and tolerates a burst of N; unlike a fixed window it never
lets 2N through across a boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    period: float = 60.0
    interval: float = field(init=False, repr=False, compare=False)
    """Seconds between two units: read several times a call, so worked out once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "interval", self.period / self.limit)


def take(tat: float, now: float, cost: float, rate: Rate) -> tuple[bool, float, float]:
    """Try to take `cost` units. Returns (allowed, new_tat, retry_after_seconds).

    A cost above the whole limit is treated as the whole limit: such a call waits for an
    idle bucket instead of being refused forever.
    """
    cost = min(cost, rate.limit)
    new_tat = max(tat, now) + cost * rate.interval
    overshoot = new_tat - now - rate.period
    if overshoot > rate.interval * 1e-6:  # tolerate float rounding, never a whole unit
        return False, tat, overshoot
    return True, new_tat, 0.0


def adjust(tat: float, now: float, delta: float, rate: Rate) -> float:
    """Charge (or refund, when `delta` < 0) units after the fact: real usage replacing an estimate."""
    return max(tat, now) + delta * rate.interval if delta > 0 else tat + delta * rate.interval


def remaining(tat: float, now: float, rate: Rate) -> int:
    used = max(0.0, tat - now)
    return max(0, min(rate.limit, math.floor((rate.period - used) / rate.interval + 1e-6)))


def reset_after(tat: float, now: float) -> float:
    """Seconds until the bucket is full again."""
    return max(0.0, tat - now)
