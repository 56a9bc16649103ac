"""A deterministic daemon for the dashboard's snapshot tests, and the apps that look at it.

The ledger is written straight into SQLite with fixed ids, key prefixes and times (three
months of seeded-random usage, each call priced as the daemon prices it when it meters one:
the config's `[prices]`, free on the simulator, and no price for the vLLM model), then the real
daemon serves it from a thread of its own on a `ManualClock` stopped at `NOW`, so every screen
renders the same on every run. The dashboard's clock is stopped at `NOW` too, and shows UTC.
Budgets: the pro plan $3 a month (ada about 77 % spent), the free plan $0.55 a day (grace about 91 %),
ada's ci key $1 a day of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from noor_daemon import config as config_module
from noor_daemon import paths
from noor_daemon.app import create_app
from noor_daemon.clock import ManualClock
from noor_daemon.domain.api_keys import KEY_PREFIX, _base62, _checksum, display_prefix, hash_key
from noor_daemon.domain.money import PriceBook
from noor_daemon.ledger.sqlite import SqliteLedger
from noor_daemon.ledger.usage import UsageEvent
from noor_daemon.server import GatewayRunner
from noor_daemon.settings import DaemonSettings
from noor_tui.app import make_app

NOW = datetime(2025, 6, 16, 12, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
TOKEN = "noor-admin-snapshot-token"

CONFIG = """
default_plan = "free"

[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[providers]]
name = "local-vllm"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator", model = "sim-gpt" }]

[[models]]
name = "sim-claude"
routes = [{ provider = "simulator", model = "sim-claude" }]

[[models]]
name = "sim-embed"
routes = [{ provider = "simulator", model = "sim-embed" }]

[[models]]
name = "llama-3-8b"
routes = [{ provider = "local-vllm", model = "meta-llama/Meta-Llama-3-8B-Instruct" }]

[plans.free]
requests_per_minute = 60
tokens_per_day = 200000
budget_per_day = 0.55

[plans.pro]
requests_per_minute = 600
tokens_per_month = 50000000
budget_per_month = 3.0

[budgets]
alert_thresholds = []  # no alerts: they would add audit entries while a snapshot is being taken

[prices."sim-gpt"]
input_per_million = 2.5
output_per_million = 10.0

[prices."sim-claude"]
input_per_million = 3.0
output_per_million = 15.0
"""


def secret(number: int) -> str:
    """A well-formed key from a fixed seed, so prefixes and hashes are the same on every run."""
    body = _base62(int.from_bytes(hashlib.sha256(f"snapshot-key-{number}".encode()).digest(), "big"), 43)
    return KEY_PREFIX + body + _checksum(body)


ACCOUNTS = [
    ("acct_0000000000ada1", "ada@example.com", "pro", "active", NOW_MS - 80 * DAY),
    ("acct_0000000000grc2", "grace@example.com", "free", "active", NOW_MS - 60 * DAY),
    ("acct_0000000000lin3", "linus@example.com", "free", "suspended", NOW_MS - 40 * DAY),
    ("acct_0000000000mrg4", "margaret@example.com", "pro", "active", NOW_MS - 20 * DAY),
]
# id, account, secret number, name, status, created, expires, revoked, limits
KEYS = [
    ("key_000000000000001", "acct_0000000000ada1", 1, "laptop", "active", NOW_MS - 79 * DAY, None, None, None),
    ("key_000000000000002", "acct_0000000000ada1", 2, "ci", "active", NOW_MS - 30 * DAY, None, None,
     {"requests_per_minute": 120, "budget_per_day": 1.0}),
    ("key_000000000000003", "acct_0000000000grc2", 3, "notebook", "active", NOW_MS - 59 * DAY, None, None, None),
    ("key_000000000000004", "acct_0000000000grc2", 4, "old-laptop", "active", NOW_MS - 58 * DAY, None, NOW_MS - 10 * DAY, None),
    ("key_000000000000005", "acct_0000000000lin3", 5, "batch", "suspended", NOW_MS - 39 * DAY, None, None, None),
    ("key_000000000000006", "acct_0000000000mrg4", 6, "staging", "active", NOW_MS - 19 * DAY, NOW_MS + 11 * DAY, None, None),
    ("key_000000000000007", "acct_0000000000mrg4", 7, "trial", "active", NOW_MS - 15 * DAY, NOW_MS - 1 * DAY, None, None),
]
ME_KEY = secret(1)
"""ada@example.com's laptop key: what the self-service snapshots sign in with."""

LIVE_KEYS = ["key_000000000000001", "key_000000000000002", "key_000000000000003", "key_000000000000006"]
MODELS = [("sim-gpt", 0.5), ("sim-claude", 0.3), ("sim-embed", 0.1), ("llama-3-8b", 0.1)]


ROUTES = {"llama-3-8b": "meta-llama/Meta-Llama-3-8B-Instruct"}


def _events() -> list[UsageEvent]:
    rng = random.Random(20250616)
    owners = {k[0]: k[1] for k in KEYS}
    prices = PriceBook(config_module.parse(CONFIG, "snapshot.toml"))
    events = []

    def one(ts: int) -> UsageEvent:
        key_id = rng.choice(LIVE_KEYS)
        model = rng.choices([m for m, _ in MODELS], [w for _, w in MODELS])[0]
        provider = "local-vllm" if model == "llama-3-8b" else "simulator"
        roll = rng.random()
        status = 200 if roll > 0.03 else 429 if roll > 0.01 else 502
        prompt = rng.randint(20, 900) if status == 200 else 0
        completion = 0 if model == "sim-embed" or status != 200 else rng.randint(10, 600)
        latency = rng.lognormvariate(5.3, 0.5) + completion * 2.0
        stream = model != "sim-embed" and rng.random() < 0.6
        return UsageEvent(
            ts=ts, model=model, endpoint="embeddings" if model == "sim-embed" else "chat/completions", status=status,
            latency_ms=round(latency, 1), account_id=owners[key_id], key_id=key_id, provider=provider,
            prompt_tokens=prompt, completion_tokens=completion, ttft_ms=round(latency * 0.25, 1) if stream else None,
            stream=stream, cost=prices.cost(provider, ROUTES.get(model, model), prompt, completion),
        )

    for day in range(1, 88):  # three months, busier on weekdays
        for _ in range(rng.randint(8, 30)):
            events.append(one(NOW_MS - day * DAY + rng.randint(0, DAY - 1)))
    for _ in range(400):  # the last day
        events.append(one(NOW_MS - rng.randint(HOUR, DAY - 1)))
    for minute in range(60):  # the last hour: a rising curve with a burst of errors
        calls = 2 + minute // 6 + (6 if 40 <= minute < 44 else 0)
        for _ in range(calls):
            event = one(NOW_MS - HOUR + minute * MINUTE + rng.randint(0, MINUTE - 1))
            if 40 <= minute < 44 and rng.random() < 0.4:
                event.status, event.completion_tokens = 502, 0
                event.cost = prices.cost(event.provider, ROUTES.get(event.model, event.model), event.prompt_tokens, 0)
            events.append(event)
    events.sort(key=lambda e: e.ts)
    return events


def build_ledger(data_dir: Path) -> None:
    """Create the ledger (the daemon's own migrations), then write the fixed rows."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = paths.database_file(data_dir)

    async def migrate() -> None:
        ledger = SqliteLedger(path)
        await ledger.open()
        await ledger.append_usage(_events())  # the one writer: events, hourly, daily and route rollups
        await ledger.close()

    asyncio.run(migrate())
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO accounts (id, email, plan, status, created_at) VALUES (?, ?, ?, ?, ?)", ACCOUNTS)
        for key_id, account, number, name, status, created, expires, revoked, limits in KEYS:
            full = secret(number)
            db.execute(
                """INSERT INTO api_keys (id, account_id, key_hash, prefix, name, allowed_models, limits, status,
                       created_at, expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)""",
                (key_id, account, hash_key(full), display_prefix(full), name, json.dumps(limits) if limits else None,
                 status, created, expires, revoked, NOW_MS - number * 7 * MINUTE if key_id in LIVE_KEYS else None),
            )
        db.executemany(
            """INSERT INTO privacy_requests (kind, account_id, source, status, received_at, due_at, completed_at, note)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                ("access", "acct_0000000000grc2", "admin", "open", NOW_MS - 35 * DAY, NOW_MS - 5 * DAY, None, "asked by post"),
                ("correction", "acct_0000000000ada1", "admin", "open", NOW_MS - 3 * DAY, NOW_MS + 27 * DAY, None, None),
                ("deletion", "anon_5f1c0e9d2b7a4c31", "self", "completed", NOW_MS - 50 * DAY, NOW_MS - 20 * DAY,
                 NOW_MS - 50 * DAY + HOUR, None),
            ],
        )
        db.executemany(
            "INSERT INTO audit_log (ts, actor, action, target_type, target_id, account_id, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (NOW_MS - 50 * DAY, "self", "account.deleted", "account", "anon_5f1c0e9d2b7a4c31", "anon_5f1c0e9d2b7a4c31", '{"keys": 2}'),
                (NOW_MS - 40 * DAY, "admin", "account.created", "account", "acct_0000000000lin3", "acct_0000000000lin3", None),
                (NOW_MS - 12 * DAY, "abuse", "abuse.spike", "key", "key_000000000000005", "acct_0000000000lin3", '{"factor": 14.2}'),
                (NOW_MS - 12 * DAY + MINUTE, "admin", "account.suspended", "account", "acct_0000000000lin3", "acct_0000000000lin3", None),
                (NOW_MS - 10 * DAY, "admin", "key.revoked", "key", "key_000000000000004", "acct_0000000000grc2", None),
                (NOW_MS - 3 * DAY, "admin", "privacy.request_recorded", "privacy_request", "2", "acct_0000000000ada1", '{"kind": "correction"}'),
            ],
        )
        db.executemany(
            "INSERT INTO policy_versions (version, published_at, effective_at, summary, material, url, notices) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (1, NOW_MS - 200 * DAY, NOW_MS - 186 * DAY, "First privacy policy.", 1, None, 0),
                (2, NOW_MS - 10 * DAY, NOW_MS + 4 * DAY, "Usage logs are kept 60 days instead of 90.", 1, None, 4),
            ],
        )
    db.close()


@dataclass
class SnapshotDaemon:
    """The real daemon on the fixed ledger, in a thread with its own event loop."""

    data_dir: Path
    url: str = ""

    def start(self) -> SnapshotDaemon:
        build_ledger(self.data_dir)
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            loaded = config_module.LoadedConfig(config_module.parse(CONFIG, "snapshot.toml"), None)
            settings = DaemonSettings(loaded, self.data_dir, TOKEN, "snapshot", ManualClock(start=NOW.timestamp()))
            self._runner = GatewayRunner(create_app(settings), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="snapshot-daemon", daemon=True)
        self._thread.start()
        if not ready.wait(20):
            raise RuntimeError("the snapshot daemon did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def snapshot_app(url: str, export_dir: Path, *, me: bool = False):
    """The dashboard as the snapshots see it: clock stopped at NOW, times in UTC, each screen built as it is
    first shown (none built while idle, so what a snapshot holds does not depend on when it was taken)."""
    options = {"clock": lambda: NOW, "tz": UTC, "export_dir": export_dir, "prepare": False}
    if me:
        return make_app(url, api_key=ME_KEY, **options)
    return make_app(url, token=TOKEN, **options)
