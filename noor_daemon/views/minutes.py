"""The last hour per minute and per (account, key, model): the usage screen's hour range.

The ledger's rollups are hourly; this keeps what the hour range needs in memory, fed from
committed batches. Bounded: past `max_combos` rows a minute folds calls into their account's row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from noor_daemon.clock import Clock
from noor_daemon.ledger.usage import UsageEvent

MINUTE_MS = 60_000
MAX_COMBOS_PER_MINUTE = 20_000
"""(account, key, model) rows one minute may hold; beyond it calls fold into their account's row."""


class MinuteUsage:
    """Per minute and per (account, key, model): the hourly rollup's shape at minute grain, last hour only."""

    def __init__(self, clock: Clock, *, minutes: int = 60, max_combos: int = MAX_COMBOS_PER_MINUTE) -> None:
        self.clock = clock
        self.minutes = minutes
        self.max_combos = max_combos
        self.data: dict[int, dict[tuple[str, str, str], list[int]]] = {}
        self._pruned_at: int | None = None
        """The horizon of the last prune: nothing older is added after it, so the next is due when it moves."""

    def _horizon(self) -> int:
        now_ms = int(self.clock.now() * 1000)
        return now_ms - now_ms % MINUTE_MS - self.minutes * MINUTE_MS

    def add(self, events: Iterable[UsageEvent]) -> None:
        horizon = self._horizon()
        for e in events:
            minute = e.ts - e.ts % MINUTE_MS
            if minute <= horizon:
                continue
            rows = self.data.get(minute)
            if rows is None:
                rows = self.data[minute] = {}
            combo = (e.account_id or "", e.key_id or "", e.model)
            row = rows.get(combo)
            if row is None:
                if len(rows) >= self.max_combos:
                    combo = (combo[0], "", combo[2])
                    row = rows.get(combo)
                if row is None:
                    row = rows[combo] = [0, 0, 0, 0, 0, 0]
            row[0] += 1
            if e.status >= 400:
                row[1] += 1
            row[2] += e.prompt_tokens
            row[3] += e.completion_tokens
            if e.cost is not None:
                row[4] += e.cost
            elif e.prompt_tokens or e.completion_tokens:
                row[5] += 1
        if horizon != self._pruned_at:  # once a minute, not once a commit
            self._prune_to(horizon)

    def prune(self) -> None:
        self._prune_to(self._horizon())

    def _prune_to(self, horizon: int) -> None:
        for minute in [m for m in self.data if m <= horizon]:
            del self.data[minute]
        self._pruned_at = horizon

    def rows(self, since_ms: int, account_id: str | None = None) -> Iterator[tuple]:
        """(minute, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, cost, unpriced)."""
        self.prune()
        for minute, combos in sorted(self.data.items()):
            if minute < since_ms:
                continue
            for (account, key, model), sums in combos.items():
                if account_id is None or account == account_id:
                    yield (minute, account, key, model, *sums)

    def forget_account(self, account_id: str) -> None:
        for combos in self.data.values():
            for combo in [c for c in combos if c[0] == account_id]:
                del combos[combo]
