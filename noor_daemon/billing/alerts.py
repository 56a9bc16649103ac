"""Budget alerts: a mail (and a signed webhook) when a budget crosses 50 %, 80 %, 100 % — once per period each.

100 % means "calls are refused": strict admission refuses a call whose worst case no longer fits, before the
spend itself reaches the budget, so a refusal counts as reaching it. Spend that jumps past several thresholds
between two passes is told once, at the highest (all of them are recorded, so none is told later).

Off the request path: committed batches name the scopes that spent (a ledger listener), and a background
pass reads those scopes' spend of the current period from the rollups (so several daemons on one
database agree) and compares it with their budgets. A threshold crossed is recorded in `budget_alerts`
(scope, period start, threshold) in the same transaction that queues its mails in the outbox, so a
restart neither forgets an alert nor sends it twice. The webhook's delivery state lives in the same row:
it is retried with backoff until the receiver answers 2xx, then marked sent.

The webhook body is JSON, signed like Stripe's: `X-Noor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" under [budgets] webhook_secret>`. It names accounts and keys by id, never an email.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson

from noor_daemon.clock import Clock, iso
from noor_daemon.config import Config
from noor_daemon.domain.accounts import Account, ApiKey, KeyRing
from noor_daemon.domain.money import text as money_text
from noor_daemon.domain.windows import calendar_period
from noor_daemon.ledger import rollups
from noor_daemon.ledger.audit import AuditEntry, AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.limits.enforcer import BUDGETS, NO_KEY, Limiter
from noor_daemon.mail import templates
from noor_daemon.mail.outbox import Outbox

log = logging.getLogger(__name__)

POLL_S = 30.0
SETTLE_S = 1.0
"""A pass waits this long after being woken, so a burst of commits makes one pass: under steady spend, one
pass a second (its rollup reads, a thread hop each, were ~1 % of the daemon's CPU at 0.5 s, issue #20)."""
WEBHOOK_TRIES = 12
"""Deliveries of one alert before it is given up (marked failed): with the backoff, about an hour and a half."""
WEBHOOK_TIMEOUT_S = 10.0
RETRY_BASE_S = 2.0
RETRY_MAX_S = 600.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=…,v1=…`: the HMAC-SHA256 of `<t>.<body>`, so a receiver can check origin and freshness."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class BudgetAlerts:
    def __init__(
        self,
        *,
        config: Callable[[], Config],
        ledger: Ledger,
        keyring: KeyRing,
        limiter: Limiter,
        outbox: Outbox,
        audit: AuditLog,
        clock: Clock,
        webhook_secret: str | None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.keyring = keyring
        self.limiter = limiter
        self.outbox = outbox
        self.audit = audit
        self.clock = clock
        self.webhook_secret = webhook_secret
        self._touched: set[tuple[str, str]] = set()
        self._everything = True
        """Check every scope with a budget (at start: spend may have happened while the daemon was down)."""
        self._refused: dict[tuple[str, str, str], float] = {}
        """(scope kind, id, budget name) → when a call was last refused by that budget: its 100 % alert."""
        self._wake = asyncio.Event()
        self.passes = 0
        self.retry_base_s = RETRY_BASE_S
        self._retry_at: float | None = None
        """When undelivered webhooks are tried again (monotonic); None when none wait."""

    def on_commit(self, events: list) -> None:
        """Ledger listener: the scopes that spent; the pass checks them soon."""
        spent = False
        for event in events:
            if event.cost and event.account_id:
                self._touched.add(("account", event.account_id))
                if event.key_id:
                    self._touched.add(("key", event.key_id))
                spent = True
        if spent:
            self._wake.set()

    def on_refused(self, kind: str, ident: str, name: str) -> None:
        """Limiter listener: a budget refused a call. Strict admission refuses before the spend reaches 100 %
        (a call's worst case no longer fits), so this, not the spend, is what "used up" means."""
        self._refused[(kind, ident, name)] = self.clock.now()
        self._touched.add((kind, ident))
        self._wake.set()

    def wake(self) -> None:
        self._everything = True
        self._wake.set()

    # -- the pass --------------------------------------------------------------------------------

    def _budgeted(self, touched: set[tuple[str, str]] | None) -> list[tuple[str, str, Account, ApiKey | None, dict[str, int]]]:
        """(kind, id, account, key, {budget name: picounits}) of every scope with a budget (among `touched`)."""
        found = []
        for account in list(self.keyring.accounts.values()):
            if touched is None or ("account", account.id) in touched:
                for scope in self.limiter.scopes(NO_KEY, account):
                    budgets = {name: scope.limits[name] for name, _ in BUDGETS if name in scope.limits}
                    if budgets:
                        found.append(("account", account.id, account, None, budgets))
        for key in list(self.keyring.keys.values()):
            if key.revoked or not key.limits or (touched is not None and ("key", key.id) not in touched):
                continue
            account = self.keyring.accounts.get(key.account_id)
            if account is None:
                continue
            scopes = [s for s in self.limiter.scopes(key, account) if s.kind == "key"]
            budgets = {name: scopes[0].limits[name] for name, _ in BUDGETS if scopes and name in scopes[0].limits}
            if budgets:
                found.append(("key", key.id, account, key, budgets))
        return found

    async def _spent(self, kind: str, ident: str, period: str, now_ms: int) -> tuple[int, int, int]:
        """(picounits spent, period start, period end): what every daemon committed.

        On SQLite with no shared limiter this daemon is the ledger's only writer, and the budgets' own counts
        (`PeriodCounters`: the rollups at start, then each commit) are that sum already: read without a
        query (a pass a second under steady spend was ~1 % of the daemon's CPU, issue #20). Otherwise
        from the rollups, which every daemon's commits reach."""
        window = calendar_period(period, now_ms)
        if self.ledger.engine == "sqlite" and self.limiter.shared is None:
            return self.limiter.counters.spent(kind, ident, period), window.start, window.end
        scope = {"account_id": ident} if kind == "account" else {"key_id": ident}
        union, params = rollups.union("sum(cost) AS cost", window, **scope)
        row = await self.ledger.fetchone(f"SELECT sum(cost) FROM ({union}) AS u", tuple(params))
        return int((row[0] if row else 0) or 0), window.start, window.end

    async def check(self) -> int:
        """One pass: every crossed threshold not yet alerted gets its mails and webhook. Returns alerts made."""
        touched, self._touched = self._touched, set()
        everything, self._everything = self._everything, False
        refused, self._refused = self._refused, {}
        config = self.config().budgets
        now_ms = int(self.clock.now() * 1000)
        made = 0
        for kind, ident, account, key, budgets in self._budgeted(None if everything else touched):
            for name, period in BUDGETS:
                limit = budgets.get(name)
                if not limit:
                    continue
                spent, start, end = await self._spent(kind, ident, period, now_ms)
                refused_at = refused.get((kind, ident, name))
                used_up = refused_at is not None and refused_at * 1000 >= start
                # Used up, the budget is past every threshold (the lower ones would be stale news later).
                crossed = [t for t in config.alert_thresholds if spent * 100 >= limit * t or (used_up and 100 in config.alert_thresholds)]
                if crossed and await self._alert(kind, ident, account, key, name, period, start, end, crossed, spent, limit, now_ms):
                    made += 1
        self.passes += 1
        if made:
            self._retry_at = None  # a fresh alert goes out now
        return made

    async def _alert(
        self, kind: str, ident: str, account: Account, key: ApiKey | None, name: str, period: str, start: int, end: int,
        crossed: list[int], spent: int, limit: int, now_ms: int,
    ) -> bool:
        """Record every crossed threshold not yet recorded; the highest of them is mailed and posted. (Spend
        that jumps past 50 % and 80 % between two passes makes one alert, at 80 %, not two.)"""
        config = self.config().budgets
        what = "your account" if key is None else f"the key {key.prefix}{' ' + key.name if key.name else ''}"

        def body(threshold: int) -> str:
            return orjson.dumps({
                "type": "budget.threshold_reached", "scope": kind, "id": ident, "account_id": account.id,
                "budget": name, "period_start": iso(start), "resets_at": iso(end), "threshold_percent": threshold,
                "spent": money_text(spent), "limit": money_text(limit), "currency": config.currency, "at": iso(now_ms),
            }).decode()

        async def record(db: Any) -> bool:
            alerted = None
            for threshold in sorted(crossed, reverse=True):
                webhook = "skipped" if alerted is not None else "pending" if config.webhook_url else "none"
                cursor = await db.execute(
                    """INSERT OR IGNORE INTO budget_alerts (scope, ident, period, start, threshold, sent_at, webhook,
                           webhook_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                    (kind, ident, period, start, threshold, now_ms, webhook, body(threshold)),
                )
                if cursor.rowcount == 1 and alerted is None:
                    alerted = threshold
            if alerted is None:
                return False  # alerted already (by this daemon before a restart, or by another)
            rendered = templates.budget_alert(
                what=what, threshold=alerted, spent=money_text(spent), limit=money_text(limit), currency=config.currency,
                resets_at=end,
            )
            await self.outbox.enqueue_in(db, rendered, account.email, account_id=account.id)
            if config.alert_email:
                await self.outbox.enqueue_in(db, rendered, config.alert_email, account_id=None)
            await self.audit.add_in(
                db, AuditEntry("budget.alert", "system", kind, ident, account.id, {"budget": name, "threshold": alerted})
            )
            return True

        return await self.ledger.write(record)

    # -- the webhook ------------------------------------------------------------------------------

    async def send_webhooks(self) -> int:
        """POST every pending alert to `[budgets] webhook_url`; retried on the next passes, given up after a few."""
        config = self.config().budgets
        if not config.webhook_url or not self.webhook_secret:
            return 0
        rows = await self.ledger.fetchall(
            """SELECT scope, ident, period, start, threshold, webhook_body, webhook_tries FROM budget_alerts
               WHERE webhook = 'pending' ORDER BY sent_at LIMIT 100"""
        )
        sent, waiting = 0, []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)) as http:
            for row in rows:
                body = row["webhook_body"].encode()
                headers = {"Content-Type": "application/json", "X-Noor-Signature": signature(self.webhook_secret, int(time.time()), body)}
                try:
                    async with http.post(config.webhook_url, data=body, headers=headers) as response:
                        ok = 200 <= response.status < 300
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                state = "sent" if ok else ("failed" if row["webhook_tries"] + 1 >= WEBHOOK_TRIES else "pending")
                key = (row["scope"], row["ident"], row["period"], row["start"], row["threshold"])
                await self.ledger.write(lambda db, key=key, state=state: db.execute(
                    """UPDATE budget_alerts SET webhook = ?, webhook_tries = webhook_tries + 1
                       WHERE scope = ? AND ident = ? AND period = ? AND start = ? AND threshold = ?""",
                    (state, *key),
                ))
                sent += ok
                if state == "pending":
                    waiting.append(row["webhook_tries"] + 1)
                if not ok:
                    log.warning("budget webhook not delivered (try %d of %d)", row["webhook_tries"] + 1, WEBHOOK_TRIES)
        # Exponential backoff from the freshest failure: 2 s, 4 s, 8 s … up to 10 minutes.
        self._retry_at = time.monotonic() + min(RETRY_MAX_S, self.retry_base_s * 2 ** (min(waiting) - 1)) if waiting else None
        return sent

    async def loop(self) -> None:
        while True:
            retry_in = None if self._retry_at is None else max(0.0, self._retry_at - time.monotonic())
            try:
                async with asyncio.timeout(POLL_S if retry_in is None else min(POLL_S, retry_in)):
                    await self._wake.wait()
                await asyncio.sleep(SETTLE_S)
            except TimeoutError:
                if retry_in is None or retry_in >= POLL_S:
                    self._everything = True  # a period may have begun, or the config changed: look at everything
            self._wake.clear()
            try:
                async with self.ledger.exclusive("budget-alerts") as mine:
                    if mine:
                        await self.check()
                        if self._retry_at is None or time.monotonic() >= self._retry_at:
                            await self.send_webhooks()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or a ledger fault must not stop the alerts
                log.error("budget alerts pass failed: %s", type(exc).__name__)

    async def ctx(self, app: Any) -> AsyncIterator[None]:
        task = asyncio.create_task(self.loop(), name="budget-alerts")
        self._wake.set()
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
