"""The daemon's live view of metered calls, kept in memory for the dashboard.

Three things are fed from committed ledger batches (a commit listener, off the request
path, never waiting on a reader):

- `EventFeed`: fans each call out to the subscribers of `GET /admin/v1/events`. Every
  subscriber has a bounded queue; a full queue drops events for that subscriber only, so a
  slow dashboard can never slow the gateway. A short backlog lets a dashboard that
  (re)connects show the latest calls at once, resuming from `Last-Event-ID`.
- `MetricsWindow`: the last hour in 10-second buckets with latency histograms, for the
  overview's rates, error rate and p50/p95 (`GET /admin/v1/overview`).
- `MinuteUsage` (`minutes.py`): the last hour per minute and per (account, key, model), for
  the usage screen's hour range (the ledger's rollups are hourly).

What is kept is what a usage row holds, minus the ids a view does not need: the feed names
an account by id and a key by its display prefix; no email, no content, ever. Nothing here
is written anywhere, and an account's aggregates are dropped when it is deleted.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from noor_daemon.clock import Clock, iso
from noor_daemon.config import Config
from noor_daemon.domain.accounts import Account, KeyRing
from noor_daemon.domain.money import amount
from noor_daemon.ledger.database import Ledger
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.views.day_cache import DayCache
from noor_daemon.views.minutes import MinuteUsage
from noor_daemon.views.series import RANGES, cached_rows

log = logging.getLogger(__name__)

WINDOW_SECONDS = 3600
STEP_SECONDS = 10
SUBSCRIBER_QUEUE = 2048
"""Events a subscriber may fall behind by before its feed drops events."""
BACKLOG = 200

# Latency histogram: bin i holds values below BOUNDS[i]; 1.2x steps from 1 ms to ~10 minutes.
BOUNDS: list[float] = [1.2**i for i in range(74)]
NBINS = len(BOUNDS) + 1


def _bin(value_ms: float) -> int:
    return bisect.bisect_right(BOUNDS, max(0.0, value_ms))


def percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram, interpolated inside its bin (about ±10 %)."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            low = BOUNDS[i - 1] if i > 0 else 0.0
            high = BOUNDS[i] if i < len(BOUNDS) else BOUNDS[-1] * 1.2
            return low + (high - low) * max(0.0, min(1.0, (rank - seen) / count))
        seen += count
    return BOUNDS[-1]


# -- the feed --------------------------------------------------------------------------


class Subscriber:
    """One `GET /admin/v1/events` stream: a bounded queue of encoded events."""

    __slots__ = ("queue", "dropped", "closed", "__weakref__")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=size)
        self.dropped = 0
        self.closed = False

    def offer(self, item: tuple[int, bytes]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    def close(self) -> None:
        """End the stream: its handler sees None next (room is made if the queue is full)."""
        self.closed = True
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class EventFeed:
    def __init__(self, keyring: KeyRing, *, queue_size: int = SUBSCRIBER_QUEUE, backlog: int = BACKLOG) -> None:
        self.keyring = keyring
        self.queue_size = queue_size
        self.subscribers: weakref.WeakSet[Subscriber] = weakref.WeakSet()
        self._backlog: deque[tuple[int, UsageEvent, str | None]] = deque(maxlen=backlog)
        self.seq = 0
        self.dropped = 0

    def view(self, seq: int, event: UsageEvent, key_prefix: str | None) -> dict:
        """A call as the feed shows it: no content, no email, the key by its display prefix."""
        return {
            "seq": seq,
            "ts": iso(event.ts),
            "ts_ms": event.ts,
            "account_id": event.account_id,
            "key_prefix": key_prefix,
            "model": event.model,
            "provider": event.provider,
            "endpoint": event.endpoint,
            "status": event.status,
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "latency_ms": round(event.latency_ms, 1),
            "ttft_ms": round(event.ttft_ms, 1) if event.ttft_ms is not None else None,
            "stream": event.stream,
            "estimated": event.estimated,
            "cost": amount(event.cost) if event.cost is not None else None,
        }

    def _prefix(self, key_id: str | None) -> str | None:
        key = self.keyring.keys.get(key_id) if key_id else None
        return key.prefix if key is not None else None

    def publish(self, events: list[UsageEvent]) -> None:
        subscribers = list(self.subscribers)
        for event in events:
            self.seq += 1
            prefix = self._prefix(event.key_id)
            self._backlog.append((self.seq, event, prefix))
            if subscribers:
                encoded = orjson.dumps(self.view(self.seq, event, prefix))
                for sub in subscribers:
                    sub.offer((self.seq, encoded))
        if subscribers:
            self.dropped = sum(s.dropped for s in subscribers)

    def seed(self, events: Iterable[tuple[UsageEvent, str | None]]) -> None:
        for event, prefix in events:
            self.seq += 1
            self._backlog.append((self.seq, event, prefix))

    def subscribe(self, after: int | None = None, backlog: int = 50) -> Subscriber:
        """A new subscriber, primed with the backlog after `after` (a resume) or its last `backlog` calls."""
        sub = Subscriber(self.queue_size)
        recent = [item for item in self._backlog if after is None or item[0] > after]
        if after is None:
            recent = recent[-backlog:] if backlog > 0 else []
        for seq, event, prefix in recent[-self.queue_size :]:
            sub.offer((seq, orjson.dumps(self.view(seq, event, prefix))))
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def close_all(self) -> None:
        for sub in list(self.subscribers):
            sub.close()

    def forget_account(self, account_id: str) -> None:
        kept = [item for item in self._backlog if item[1].account_id != account_id]
        self._backlog.clear()
        self._backlog.extend(kept)


# -- the last hour, for the charts ---------------------------------------------------------


@dataclass(slots=True)
class Bucket:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * NBINS)
    ttft: list[int] = field(default_factory=lambda: [0] * NBINS)

    def add(self, e: UsageEvent) -> None:
        self.requests += 1
        if e.status >= 400:
            self.errors += 1
        self.prompt_tokens += e.prompt_tokens
        self.completion_tokens += e.completion_tokens
        self.latency[_bin(e.latency_ms)] += 1
        if e.ttft_ms is not None:
            self.ttft[_bin(e.ttft_ms)] += 1


def _merge(target: list[int], source: list[int]) -> None:
    for i, count in enumerate(source):
        if count:
            target[i] += count


class MetricsWindow:
    """The last hour of calls as totals and latency histograms per 10-second bucket. No identity."""

    def __init__(self, clock: Clock, *, seconds: int = WINDOW_SECONDS, step: int = STEP_SECONDS) -> None:
        self.clock = clock
        self.seconds = seconds
        self.step = step
        self.buckets: dict[int, Bucket] = {}
        self._pruned_at: int | None = None
        """The horizon of the last prune: nothing older is added after it, so the next is due when it moves."""

    def _slot(self, ts_ms: int) -> int:
        second = ts_ms // 1000
        return second - second % self.step

    def _horizon(self, now: float) -> int:
        return self._slot(int(now * 1000)) - self.seconds

    def add(self, events: Iterable[UsageEvent]) -> None:
        horizon = self._horizon(self.clock.now())
        for e in events:
            slot = self._slot(e.ts)
            if slot <= horizon:
                continue
            bucket = self.buckets.get(slot)
            if bucket is None:
                bucket = self.buckets[slot] = Bucket()
            bucket.add(e)
        if horizon != self._pruned_at:  # once a step, not once a commit (a lone call's commit is a batch)
            self._prune_to(horizon)

    def prune(self) -> None:
        self._prune_to(self._horizon(self.clock.now()))

    def _prune_to(self, horizon: int) -> None:
        for slot in [s for s in self.buckets if s <= horizon]:
            del self.buckets[slot]
        self._pruned_at = horizon

    def report(self, window: int = WINDOW_SECONDS, step: int = 60) -> dict:
        """Series over the last `window` seconds in `step`-second points (rates per minute), and totals."""
        self.prune()
        now = self.clock.now()
        step = max(self.step, step - step % self.step)
        window = max(step, min(self.seconds, window - window % step))
        end_slot = self._slot(int(now * 1000))
        last_start = end_slot - end_slot % step
        first_start = last_start - window + step
        points = window // step
        merged = [Bucket() for _ in range(points)]
        total = Bucket()
        last_minute = Bucket()
        for slot, bucket in self.buckets.items():
            if slot >= end_slot - 60 + self.step:
                _add_bucket(last_minute, bucket)
            if slot < first_start:
                continue
            index = (slot - first_start) // step
            if 0 <= index < points:
                _add_bucket(merged[index], bucket)
                _add_bucket(total, bucket)
        # The last point is still filling: rate it over the seconds it has covered.
        covered = [float(step)] * points
        covered[-1] = max(1.0, min(float(step), now - last_start))
        minute_span = max(1.0, min(60.0, now - (end_slot - 60 + self.step)))
        series: dict[str, list] = {
            "requests": [], "errors": [], "tokens": [], "rpm": [], "tpm": [], "error_rate": [],
            "latency_p50_ms": [], "latency_p95_ms": [], "ttft_p50_ms": [],
        }
        # The last point's rates are over the trailing `step` seconds, so a point that has just begun does not jump.
        trailing = Bucket()
        for slot, bucket in self.buckets.items():
            if slot > end_slot - step:
                _add_bucket(trailing, bucket)
        trailing_span = max(float(self.step), min(float(step), now - (end_slot - step + self.step)))
        for index, (bucket, seconds) in enumerate(zip(merged, covered, strict=True)):
            tokens = bucket.prompt_tokens + bucket.completion_tokens
            series["requests"].append(bucket.requests)
            series["errors"].append(bucket.errors)
            series["tokens"].append(tokens)
            rated, span = (trailing, trailing_span) if index == points - 1 else (bucket, seconds)
            series["rpm"].append(round(rated.requests * 60 / span, 2))
            series["tpm"].append(round((rated.prompt_tokens + rated.completion_tokens) * 60 / span, 1))
            series["error_rate"].append(round(bucket.errors / bucket.requests, 4) if bucket.requests else None)
            series["latency_p50_ms"].append(_round(percentile(bucket.latency, 0.5)))
            series["latency_p95_ms"].append(_round(percentile(bucket.latency, 0.95)))
            series["ttft_p50_ms"].append(_round(percentile(bucket.ttft, 0.5)))
        return {
            "now": iso(now * 1000),
            "window_seconds": window,
            "step_seconds": step,
            "start": iso(first_start * 1000),
            "series": series,
            "window": _summary(total, window),
            "last_minute": _summary(last_minute, minute_span),
        }


def _add_bucket(target: Bucket, source: Bucket) -> None:
    target.requests += source.requests
    target.errors += source.errors
    target.prompt_tokens += source.prompt_tokens
    target.completion_tokens += source.completion_tokens
    _merge(target.latency, source.latency)
    _merge(target.ttft, source.ttft)


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _summary(bucket: Bucket, seconds: float) -> dict:
    tokens = bucket.prompt_tokens + bucket.completion_tokens
    return {
        "seconds": round(seconds, 1),
        "requests": bucket.requests,
        "errors": bucket.errors,
        "prompt_tokens": bucket.prompt_tokens,
        "completion_tokens": bucket.completion_tokens,
        "rpm": round(bucket.requests * 60 / seconds, 2) if seconds else 0.0,
        "tpm": round(tokens * 60 / seconds, 1) if seconds else 0.0,
        "error_rate": round(bucket.errors / bucket.requests, 4) if bucket.requests else None,
        "latency_p50_ms": _round(percentile(bucket.latency, 0.5)),
        "latency_p95_ms": _round(percentile(bucket.latency, 0.95)),
        "ttft_p50_ms": _round(percentile(bucket.ttft, 0.5)),
    }


# -- wiring ------------------------------------------------------------------------------


@dataclass
class LiveState:
    feed: EventFeed
    window: MetricsWindow
    minutes: MinuteUsage
    seeded: asyncio.Event = field(default_factory=asyncio.Event)
    days: DayCache = field(default_factory=DayCache)

    def on_commit(self, events: list[UsageEvent]) -> None:
        self.window.add(events)
        self.minutes.add(events)
        self.feed.publish(events)
        if self.days.holds_any():
            today = int(self.window.clock.now() * 1000) // 86_400_000 * 86_400_000
            late = {e.ts - e.ts % 86_400_000 for e in events if e.ts < today}  # a long stream, or a backfill
            if late:
                self.days.forget_days(late)

    async def forget_account(self, account: Account) -> None:
        """An account was deleted: drop what memory still holds about it."""
        self.minutes.forget_account(account.id)
        self.feed.forget_account(account.id)
        self.days.clear()



_EVENT_COLUMNS = (
    "id, ts, account_id, key_id, model, provider, endpoint, status, prompt_tokens, completion_tokens, "
    "latency_ms, ttft_ms, stream, estimated, cost"
)


def _event(row) -> UsageEvent:
    return UsageEvent(
        ts=row[1], account_id=row[2], key_id=row[3], model=row[4], provider=row[5], endpoint=row[6],
        status=row[7], prompt_tokens=row[8], completion_tokens=row[9], latency_ms=row[10], ttft_ms=row[11],
        stream=bool(row[12]), estimated=bool(row[13]), cost=row[14],
    )


async def seed(live: LiveState, ledger: Ledger, clock: Clock, through_id: int) -> None:
    """Fill the last hour from the ledger after a restart (rows up to `through_id`; later ones arrive by listener)."""
    since = int(clock.now() * 1000) - WINDOW_SECONDS * 1000
    # The day cache's own connection (its warm-up waits for this): a scan in pages keeps its
    # connection's snapshot until it ends, which must not be the one every other read shares.
    reader = live.days.reader or ledger.reader
    try:
        async with reader.execute(
            f"SELECT {_EVENT_COLUMNS} FROM usage_events WHERE ts >= ? AND id <= ?", (since, through_id)
        ) as cursor:
            while rows := await cursor.fetchmany(5000):
                events = [_event(r) for r in rows]
                live.window.add(events)
                live.minutes.add(events)
    except Exception as exc:  # the dashboard's history is a nicety; the daemon runs without it
        log.warning("could not load the last hour for the dashboard: %s", type(exc).__name__)
    finally:
        live.seeded.set()


async def warm_days(live: LiveState, ledger: Ledger, clock: Clock, config: Callable[[], Config]) -> None:
    """Fill the day cache for the 90-day ranges after start, so the first person to open them does not wait."""
    await live.seeded.wait()
    try:
        for column in ("model", "key_id", "account_id"):
            now_ms = int(clock.now() * 1000)
            await cached_rows(ledger, live.days, config(), column, RANGES["90d"].window(now_ms), now_ms)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a nicety: the ranges read the ledger directly without it
        log.warning("could not pre-compute the long usage ranges: %s", type(exc).__name__)


def live_context(
    live: LiveState, ledger: Ledger, clock: Clock, config: Callable[[], Config]
) -> Callable[[Any], AsyncIterator[None]]:
    """The live view's `cleanup_ctx` entry: the backlog and the last hour loaded at start, the day cache warmed."""

    async def ctx(_app: Any) -> AsyncIterator[None]:
        last = await ledger.fetchall(
            f"SELECT {_EVENT_COLUMNS}, (SELECT prefix FROM api_keys k WHERE k.id = e.key_id) "
            "FROM usage_events e ORDER BY id DESC LIMIT ?",
            (BACKLOG,),
        )
        live.feed.seed((_event(r), r[15]) for r in reversed(last))
        through = last[0][0] if last else 0
        live.days.reader = await ledger.open_reader()
        tasks = [
            asyncio.create_task(seed(live, ledger, clock, through), name="live-seed"),
            asyncio.create_task(warm_days(live, ledger, clock, config), name="live-days"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        reader, live.days.reader = live.days.reader, None
        await ledger.close_reader(reader)

    return ctx
