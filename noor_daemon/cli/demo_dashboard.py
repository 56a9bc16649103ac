"""`noor demo` with the dashboard: the daemon on the simulator, a week of history, traffic that keeps flowing.

A temporary data dir gets a few accounts and keys (made by the daemon's own `AccountStore`)
and a week of simulated usage written through the ledger, so every screen has something to
show at once (budgets too, sized to what that history spent); then the real daemon serves it
from a background thread while callers keep
sending mixed traffic (streaming and not, both API shapes, embeddings, now and then a bad
key, a rate-limited trial account and an oversized body). The dashboard opens in the
foreground; when it closes, everything stops and the data dir is deleted.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from noor_daemon.cli.demo import DEMO_PLANS, TRAFFIC, TRIAL_EMAIL, WORKERS, chat, demo_config
from noor_daemon.client import AdminClient

ACCOUNTS = [
    ("ada@example.com", "free", ["laptop", "ci"]),
    ("grace@example.com", "free", ["notebook"]),
    ("linus@example.com", "free", ["batch"]),
    (TRIAL_EMAIL, "trial", ["trial"]),
]
HISTORY_DAYS = 7
CALLS_PER_MINUTE = 60
"""The history's rate at the busiest hour: about what `traffic` sends once the dashboard is open, so the
charts read as one continuing curve rather than a flat line and then a wall."""
PRICES = {
    "sim-gpt": {"input_per_million": 2.5, "output_per_million": 10.0},
    "sim-claude": {"input_per_million": 3.0, "output_per_million": 15.0},
    "sim-embed": {"input_per_million": 0.1, "output_per_million": 0.0},
}
"""Made-up prices, so the usage and billing screens have estimates to show."""
BUDGETS = [
    # account email, key name (None: the account's own), budget, share of it the history has spent, at least
    ("ada@example.com", None, "budget_per_day", 0.6, 25.0),
    ("ada@example.com", "ci", "budget_per_day", 0.8, 15.0),
    ("grace@example.com", None, "budget_per_month", 0.92, 60.0),
]
"""Budgets at several levels of use (green, yellow, red), each large enough that the demo's traffic (a few
dollars an hour in all) does not spend it in a demo's length."""


PLANS = {**DEMO_PLANS, "free": {**DEMO_PLANS["free"], "tokens_per_month": 500_000_000}}
"""The seeded history spends a few million tokens a day per account: under `noor demo`'s million a month, every
call of the dashboard's traffic would be refused by the month's quota."""


def priced_config():
    """`noor demo`'s config with the made-up prices (and a month's token quota the history fits in): what the
    daemon serves and what the history is priced by."""
    from noor_daemon.config import Config

    base = demo_config().config
    return Config.model_validate({**base.model_dump(exclude_none=True), "prices": PRICES, "plans": PLANS})


MODELS = [("sim-gpt", "chat/completions", 0.55), ("sim-claude", "messages", 0.3), ("sim-embed", "embeddings", 0.15)]


async def seed(data_dir: Path) -> dict[str, list[str]]:
    """Accounts, keys and a week of usage in a fresh ledger; returns each account's key secrets."""
    from noor_daemon import paths
    from noor_daemon.clock import Clock
    from noor_daemon.domain.accounts import KeyRing
    from noor_daemon.domain.money import PriceBook
    from noor_daemon.ledger.accounts import AccountStore
    from noor_daemon.ledger.audit import AuditLog
    from noor_daemon.ledger.sqlite import SqliteLedger
    from noor_daemon.ledger.usage import UsageEvent

    paths.ensure_private_dir(data_dir)
    ledger = SqliteLedger(paths.database_file(data_dir))
    await ledger.open()
    clock = Clock()
    store = AccountStore(ledger, KeyRing(), clock, AuditLog(ledger, clock))
    secrets: dict[str, list[str]] = {}
    owners: list[tuple[str, str]] = []
    for email, plan, names in ACCOUNTS:
        account = await store.create_account(email, plan, actor="demo")
        for name in names:
            issued = await store.create_key(account.id, name=name, actor="demo")
            secrets.setdefault(email, []).append(issued.secret)
            if plan != "trial":
                owners.append((account.id, issued.key.id))

    rng = random.Random()
    now = int(time.time() * 1000)
    prices = PriceBook(priced_config())  # each call's cost as the daemon would have metered it
    events = []
    for minute in range(HISTORY_DAYS * 24 * 60, 0, -1):
        ts = now - minute * 60_000
        hour = (ts // 3_600_000) % 24
        busy = 0.35 + 0.65 * max(0.0, math.sin((hour - 6) / 24 * 2 * math.pi))  # a working day's curve
        mean = CALLS_PER_MINUTE * busy
        for _ in range(int(mean) + (rng.random() < mean % 1)):
            account_id, key_id = rng.choice(owners)
            model, endpoint, _ = rng.choices(MODELS, [w for *_, w in MODELS])[0]
            ok = rng.random() > 0.02
            prompt = rng.randint(20, 400) if ok else 0
            completion = 0 if model == "sim-embed" or not ok else rng.randint(10, 300)
            latency = rng.lognormvariate(5.5, 0.4) + completion * 3
            stream = endpoint != "embeddings" and rng.random() < 0.5
            events.append(
                UsageEvent(
                    ts=ts + rng.randint(0, 59_999), model=model, endpoint=endpoint, status=200 if ok else 502,
                    latency_ms=round(latency, 1), account_id=account_id, key_id=key_id, provider="simulator",
                    prompt_tokens=prompt, completion_tokens=completion, stream=stream,
                    ttft_ms=round(latency * 0.2, 1) if stream else None,
                    cost=prices.cost("simulator", model, prompt, completion),
                )
            )
    await ledger.append_usage(events)  # the ledger's one writer: events, hourly, daily and route rollups
    await ledger.close()
    return secrets


async def give_budgets(admin: AdminClient) -> None:
    """`BUDGETS`, through the admin API as an operator would set them (`noor account limits`, `noor key limits`)."""
    accounts = {a.email: a for a in await admin.list_accounts()}
    keys = {(k.account_id, k.name): k for k in await admin.list_keys()}
    for email, key_name, budget, share, least in BUDGETS:
        account = accounts[email]
        period = "day" if budget == "budget_per_day" else "month"
        if key_name is None:
            lines = (await admin.spend(period=period, by="account")).data
            spent = next((line.cost for line in lines if line.account == account.id), 0.0)
            await admin.update_account(account.id, limits={budget: round(max(spent / share, least), 2)})
        else:
            key = keys[(account.id, key_name)]
            lines = (await admin.spend(period=period, by="key")).data
            spent = next((line.cost for line in lines if line.key == key.id), 0.0)
            await admin.set_key_limits(key.id, {**(key.limits or {}), budget: round(max(spent / share, least), 2)})


async def traffic(url: str, admin: AdminClient, secrets: dict[str, list[str]], stop: asyncio.Event) -> None:
    """Callers that keep going until `stop`, at a rate that rises and falls, plus now and then a refused call."""
    keys = [key for email, found in secrets.items() if email != TRIAL_EMAIL for key in found]
    started = time.monotonic()

    async def caller(http: aiohttp.ClientSession) -> None:
        rng = random.Random()
        while not stop.is_set():
            _, call = rng.choice(TRAFFIC)
            try:
                await call(http, url, rng.choice(keys))
            except aiohttp.ClientError:
                pass
            # About CALLS_PER_MINUTE across the callers, rising and falling, as the seeded history does.
            wave = 0.5 + 0.5 * math.sin((time.monotonic() - started) / 30)
            await asyncio.sleep(rng.uniform(0.5, 1.5) * WORKERS * 60 / CALLS_PER_MINUTE * (1.5 - wave))

    async def refusals(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            await asyncio.sleep(20)
            try:
                await chat(http, url, "sk-noor-" + "x" * 49)
                trial = secrets[TRIAL_EMAIL][0]
                await chat(http, url, trial)
                await chat(http, url, trial)
            except aiohttp.ClientError:
                pass

    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(caller(http)) for _ in range(WORKERS)]
        tasks.append(asyncio.create_task(refusals(http)))
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def running_daemon(data_dir: Path, admin_token: str) -> AsyncIterator[str]:
    """The demo's daemon (`noor demo`'s config, plus prices) in this thread's loop; yields its URL."""
    from noor_daemon.app import create_app
    from noor_daemon.config import LoadedConfig
    from noor_daemon.server import GatewayRunner
    from noor_daemon.settings import DaemonSettings

    app = create_app(DaemonSettings(LoadedConfig(priced_config(), None), data_dir, admin_token, "generated for the demo"))
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        host, port = await runner.listen("127.0.0.1", 0)
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class DemoBackground:
    """The demo daemon and its traffic on a thread of their own, so the dashboard can own the main one."""

    def __init__(self, data_dir: Path, admin_token: str) -> None:
        self.data_dir = data_dir
        self.admin_token = admin_token
        self.url = ""
        self.secrets: dict[str, list[str]] = {}
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="noor-demo", daemon=True)

    def start(self, timeout: float = 60.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the demo daemon did not start")
        if self._failed is not None:
            raise self._failed
        return self.url

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.secrets = await seed(self.data_dir)
            async with running_daemon(self.data_dir, self.admin_token) as url:
                self.url = url
                async with AdminClient(url, self.admin_token) as admin:
                    await admin.record_privacy_request("access", "grace@example.com", note="asked by email")
                    await give_budgets(admin)
                    self._ready.set()
                    await traffic(url, admin, self.secrets, self._stop)
        except BaseException as exc:
            self._failed = exc
            self._ready.set()
            raise


def run(*, theme: str = "noor-dark") -> None:
    """The demo with the dashboard in the foreground."""
    import secrets as tokens
    import tempfile

    from noor_tui.app import make_app

    token = "noor-admin-" + tokens.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="noor-demo-") as data_dir:
        background = DemoBackground(Path(data_dir), token)
        url = background.start()
        try:
            make_app(url, token=token, theme=theme).run()
        finally:
            background.stop()
