"""`noor demo`: the whole gateway offline in a few seconds.

A daemon on the built-in simulator in a temporary data dir, an account and a key made
through the admin API, some mixed traffic (including refused calls), then the usage it
metered. Everything it creates is deleted when it exits.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import click
import orjson

from noor_daemon.cli.usage import print_summary
from noor_daemon.client import AdminClient

DEMO_EMAIL = "demo@example.com"
TRIAL_EMAIL = "trial@example.com"
BODY_LIMIT = 64 * 1024
WORKERS = 4

DEMO_PLANS = {
    "free": {"requests_per_minute": 600, "tokens_per_minute": 200_000, "tokens_per_month": 1_000_000},
    "trial": {"requests_per_minute": 1},
}
"""`trial` allows one request a minute, so the demo's second trial call is refused with a 429."""


def demo_config():
    """The simulator config (what the daemon serves with no config file) plus demo plans and a small body limit.

    Built here rather than loaded, so a config file of the user's never sends demo traffic
    to a real provider.
    """
    from noor_daemon.config import SIMULATOR_CONFIG, Config, LoadedConfig

    data = {**SIMULATOR_CONFIG, "server": {"max_body_bytes": BODY_LIMIT}, "plans": DEMO_PLANS, "default_plan": "free"}
    return LoadedConfig(Config.model_validate(data), None)


@asynccontextmanager
async def running_daemon(data_dir: Path, admin_token: str) -> AsyncIterator[str]:
    """The real daemon app, in this process, on a free loopback port; yields its URL."""
    from noor_daemon.app import create_app
    from noor_daemon.server import GatewayRunner
    from noor_daemon.settings import DaemonSettings

    app = create_app(DaemonSettings(demo_config(), data_dir, admin_token, "generated for the demo"))
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        host, port = await runner.listen("127.0.0.1", 0)
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# -- the calls: prompts are fixed demo text, and nothing here prints or keeps a reply ---------


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _post(http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict | bytes) -> int:
    if isinstance(body, dict):
        body = orjson.dumps(body)
    async with http.post(url, data=body, headers={**headers, "Content-Type": "application/json"}) as response:
        async for _ in response.content.iter_any():  # read to the end: streams are metered when whole
            pass
        return response.status


def _chat_body(prompt: str, *, stream: bool = False) -> dict:
    return {"model": "sim-gpt", "messages": [{"role": "user", "content": prompt}], "max_tokens": 24, "stream": stream}


async def chat(http: aiohttp.ClientSession, url: str, key: str) -> int:
    return await _post(http, f"{url}/v1/chat/completions", _bearer(key), _chat_body("Say hello to the NoorAPI demo."))


async def chat_stream(http: aiohttp.ClientSession, url: str, key: str) -> int:
    body = _chat_body("Stream a short greeting.", stream=True)
    return await _post(http, f"{url}/v1/chat/completions", _bearer(key), body)


async def messages(http: aiohttp.ClientSession, url: str, key: str) -> int:
    body = {"model": "sim-claude", "max_tokens": 24, "messages": [{"role": "user", "content": "Greet the demo."}]}
    return await _post(http, f"{url}/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}, body)


async def embeddings(http: aiohttp.ClientSession, url: str, key: str) -> int:
    return await _post(http, f"{url}/v1/embeddings", _bearer(key), {"model": "sim-embed", "input": "a demo sentence"})


TRAFFIC: list[tuple[str, Callable[[aiohttp.ClientSession, str, str], Awaitable[int]]]] = [
    ("chat (sim-gpt)", chat),
    ("chat, streaming (sim-gpt)", chat_stream),
    ("messages (sim-claude)", messages),
    ("embeddings (sim-embed)", embeddings),
]


async def send_traffic(http: aiohttp.ClientSession, url: str, key: str, seconds: float) -> dict[str, Counter[int]]:
    """WORKERS concurrent callers taking the next kind of call in turn until time is up."""
    results: dict[str, Counter[int]] = {name: Counter() for name, _ in TRAFFIC}
    deadline = time.monotonic() + seconds
    turn = 0

    async def worker() -> None:
        nonlocal turn
        while time.monotonic() < deadline:
            name, call = TRAFFIC[turn % len(TRAFFIC)]
            turn += 1
            try:
                status = await call(http, url, key)
            except aiohttp.ClientError:
                status = 0
            results[name][status] += 1

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return results


async def refused_calls(http: aiohttp.ClientSession, url: str, admin: AdminClient) -> list[tuple[str, int, str]]:
    """A bad key, a plan's rate limit, and an oversized body: (what, status, why)."""
    bad_key = "sk-noor-" + "x" * 40
    shown = []
    status = await chat(http, url, bad_key)
    shown.append(("bad key", status, "a key that fails its checksum, refused before any lookup"))

    await admin.create_account(TRIAL_EMAIL, "trial")
    trial_key = (await admin.create_key(TRIAL_EMAIL, name="demo-trial")).key
    await chat(http, url, trial_key)
    status = await chat(http, url, trial_key)
    shown.append(("over limit", status, "a second call within a minute on the `trial` plan, which allows 1 a minute"))

    oversized = b'{"model": "sim-gpt", "padding": "' + b"x" * BODY_LIMIT + b'"}'
    status = await _post(http, f"{url}/v1/chat/completions", _bearer(trial_key), oversized)
    shown.append(("too large", status, f"a {len(oversized):,}-byte body; the demo's limit is {BODY_LIMIT:,} bytes"))
    return shown


async def run_demo(seconds: float) -> None:
    token = "noor-admin-" + secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="noor-demo-") as data_dir:
        async with running_daemon(Path(data_dir), token) as url:
            click.echo(f"NoorAPI demo: the daemon runs at {url} on the built-in simulator (a fake LLM, offline),")
            click.echo("with a temporary data dir that is deleted when the demo ends.\n")
            async with AdminClient(url, token) as admin, aiohttp.ClientSession() as http:
                account = await admin.create_account(DEMO_EMAIL)
                issued = await admin.create_key(DEMO_EMAIL, name="demo")
                click.echo(f"Created account {account.email} (plan {account.plan}) and key {issued.id} ({issued.masked}).")
                click.echo(f"Sending {seconds:g} s of traffic with {WORKERS} concurrent callers…\n")
                # The refused calls go beside the traffic (another account's), so the demo is done in about --seconds.
                results, refused = await asyncio.gather(send_traffic(http, url, issued.key, seconds), refused_calls(http, url, admin))
                _print_calls(results, refused)
                click.echo("")
                print_summary(await admin.usage_summary(hours=1))


def _print_calls(results: dict[str, Counter[int]], refused: list[tuple[str, int, str]]) -> None:
    width = max(len(name) for name in [*results, *(r[0] for r in refused)])
    for name, statuses in results.items():
        counts = ", ".join(f"{n}× {status or 'failed'}" for status, n in sorted(statuses.items()))
        click.echo(f"  {name:<{width}}  {counts or 'none sent'}")
    for name, status, why in refused:
        click.echo(f"  {name:<{width}}  1× {status}  ({why})")


@click.command()
@click.option("--seconds", type=click.FloatRange(0.5, 120), default=1.0, show_default=True,
              help="How long to send traffic (with --no-tui).")
@click.option("--no-tui", is_flag=True,
              help="Send --seconds of traffic and print a usage summary instead of opening the dashboard "
              "(what happens anyway when stdin or stdout is not a terminal).")
def demo(seconds: float, no_tui: bool) -> None:
    """Run the gateway offline on a simulated LLM: the dashboard with traffic flowing, or (--no-tui) a usage summary."""
    if not no_tui and not (sys.stdout.isatty() and sys.stdin.isatty()):
        # A pipe, a file or CI: a dashboard would draw escape codes into it and wait for keys that never come.
        click.echo("noor demo: not a terminal, so the usage summary instead of the dashboard (--no-tui)\n", err=True)
        no_tui = True
    if no_tui:
        asyncio.run(run_demo(seconds))
    else:
        from noor_daemon.cli import demo_dashboard

        demo_dashboard.run()
