"""Money where people look: cached tokens priced as such, spend per account, key and model, prices, /metrics.

A small upstream on loopback answers with the usage real providers report, prompt-cache fields included
(OpenAI's `prompt_tokens_details.cached_tokens` and `input_tokens_details.cached_tokens`, Anthropic's
`cache_read_input_tokens` and `cache_creation_input_tokens`); the calls go through the real SDKs, and
each call's cost must equal the hand-computed dollars of the shipped price table for that model.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from conftest import ADMIN_TOKEN, Daemon
from gateway_helpers import anthropic_client, openai_client, wait_for_rows

from noor_daemon.cli import cli
from noor_daemon.client import AdminClient
from noor_daemon.domain.money import UNIT
from noor_daemon.state import LEDGER

# (prompt, completion, cached, written to the cache) each upstream model reports, and the dollars by hand.
MINI = (10_000, 2_000, 4_000, 0, "0.0024")  # gpt-4o-mini: 6,000 × .15 + 4,000 × .075 + 2,000 × .60, per million
GPT41 = (3_000, 500, 1_000, 0, "0.0085")  # gpt-4.1: 2,000 × 2 + 1,000 × .5 + 500 × 8
SONNET = (20_000, 1_000, 15_000, 4_000, "0.0375")  # claude-sonnet-4-5: 1,000×3 + 15,000×.3 + 4,000×3.75 + 1,000×15


def dollars(figure: str) -> int:
    return int(Decimal(figure) * UNIT)


def chat_usage(prompt: int, completion: int, cached: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    prompt, completion, cached, _, _ = MINI
    usage = chat_usage(prompt, completion, cached)
    base = {"id": "chatcmpl-1", "created": 1, "model": body["model"]}
    if not body.get("stream"):
        return web.json_response({**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "cached answer"}}]})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    chunk = {**base, "object": "chat.completion.chunk"}
    for data in (
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "cached"}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": usage},
    ):
        await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    return response


async def responses(request: web.Request) -> web.Response:
    body = await request.json()
    prompt, completion, cached, _, _ = GPT41
    return web.json_response({
        "id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": body["model"],
        "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "cached answer", "annotations": []}]}],
        "usage": {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion,
                  "input_tokens_details": {"cached_tokens": cached}, "output_tokens_details": {"reasoning_tokens": 0}},
    })


async def messages(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    prompt, completion, read, write, _ = SONNET
    usage = {"input_tokens": prompt - read - write, "cache_read_input_tokens": read, "cache_creation_input_tokens": write}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "stop_reason": None,
               "stop_sequence": None, "content": []}
    if not body.get("stream"):
        return web.json_response({**message, "stop_reason": "end_turn", "content": [{"type": "text", "text": "cached answer"}],
                                  "usage": {**usage, "output_tokens": completion}})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for name, data in (
        ("message_start", {"type": "message_start", "message": {**message, "usage": {**usage, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "cached"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": completion}}),
        ("message_stop", {"type": "message_stop"}),
    ):
        await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
    return response


@pytest.fixture
async def cache_upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """An upstream that reports prompt-cache usage; its URL."""
    monkeypatch.setenv("MONEY_UPSTREAM_KEY", "sk-upstream-money")
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


def money_config(url: str, extra: str = "") -> str:
    return f"""
[[providers]]
name = "up-openai"
kind = "openai"
base_url = "{url}/v1"
api_key = "env:MONEY_UPSTREAM_KEY"
formats = ["chat", "responses"]

[[providers]]
name = "up-anthropic"
kind = "anthropic"
base_url = "{url}"
api_key = "env:MONEY_UPSTREAM_KEY"

[[providers]]
name = "box"
kind = "simulator"

[[models]]
name = "mini"
routes = [{{ provider = "up-openai", model = "gpt-4o-mini" }}]

[[models]]
name = "gpt41"
routes = [{{ provider = "up-openai", model = "gpt-4.1-2025-04-14" }}]

[[models]]
name = "sonnet"
routes = [{{ provider = "up-anthropic", model = "claude-sonnet-4-5-20250929" }}]

[[models]]
name = "mystery"
routes = [{{ provider = "up-openai", model = "nobody-priced-this" }}]

[[models]]
name = "house"
routes = [{{ provider = "box", model = "house-model" }}]

[[models]]
name = "tuned"
routes = [{{ provider = "up-openai", model = "ft:gpt-4o-mini:team:tuned" }}]

[prices."ft:gpt-4o-mini:*"]
input_per_million = 0.3
output_per_million = 1.2
{extra}
"""


async def test_cached_and_uncached_tokens_are_priced_from_the_table_in_every_format(start_daemon, cache_upstream) -> None:
    daemon = await start_daemon(money_config(cache_upstream))
    key = await daemon.create_key("cache@example.com")
    oai, claude = openai_client(daemon, key), anthropic_client(daemon, key)

    said = [{"role": "user", "content": "price the cache"}]
    reply = await oai.chat.completions.create(model="mini", messages=said)
    assert reply.usage.prompt_tokens_details.cached_tokens == 4_000  # relayed as the provider said
    stream = await oai.chat.completions.create(model="mini", messages=said, stream=True)
    assert [c async for c in stream]
    await oai.responses.create(model="gpt41", input="price the cache")
    await claude.messages.create(model="sonnet", max_tokens=64, messages=said)
    async with claude.messages.stream(model="sonnet", max_tokens=64, messages=said) as events:
        await events.get_final_message()
    await claude.messages.create(model="mini", max_tokens=64, messages=said)  # translated: Messages → Chat Completions

    rows = await wait_for_rows(daemon, 6)
    figures = [MINI, MINI, GPT41, SONNET, SONNET, MINI]
    for row, (prompt, completion, cached, write, cost) in zip(rows, figures, strict=True):
        assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (
            prompt, completion, cached, write), row["endpoint"]
        assert row["cost"] == dollars(cost), (row["model"], row["endpoint"])
    total = sum(dollars(f[4]) for f in figures)
    assert (await daemon.app[LEDGER].fetchone("SELECT sum(cost) FROM usage_hourly"))[0] == total

    async with AdminClient(daemon.url, ADMIN_TOKEN) as admin:
        by_model = await admin.spend(period="day", by="model")
        assert by_model.currency == "USD"
        assert {line.model: line.cost for line in by_model.data} == {
            "mini": float(Decimal("0.0024") * 3), "gpt41": 0.0085, "sonnet": 0.075}
        assert by_model.total == pytest.approx(total / UNIT)
        by_account = await admin.spend(by="account")
        assert [line.email for line in by_account.data] == ["cache@example.com"]
        assert by_account.data[0].requests == 6 and by_account.data[0].unpriced_calls == 0
        summary = await admin.usage_summary()
        assert summary.totals.requests == 6

    async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/metrics") as response:
        exposition = await response.text()
    cost_of = {m[0]: float(m[1]) for m in re.findall(r'noor_cost_total\{model="(\w+)",provider="[\w-]+"\} (\S+)', exposition)}
    assert cost_of == pytest.approx({"mini": 0.0072, "gpt41": 0.0085, "sonnet": 0.075})


async def test_unpriced_calls_are_counted_as_such_and_local_models_are_free(start_daemon, cache_upstream) -> None:
    daemon = await start_daemon(money_config(cache_upstream))
    key = await daemon.create_key("unpriced@example.com")
    oai = openai_client(daemon, key)
    said = [{"role": "user", "content": "who prices me"}]
    await oai.chat.completions.create(model="mystery", messages=said)
    await oai.chat.completions.create(model="house", messages=said)
    await oai.chat.completions.create(model="tuned", messages=said)  # a [prices] glob
    mystery, house, tuned = await wait_for_rows(daemon, 3)
    assert mystery["cost"] is None and mystery["prompt_tokens"] == 10_000
    assert house["cost"] == 0 and house["prompt_tokens"] > 0
    assert tuned["cost"] == 6_000 * dollars("0.3") // 10**6 + 4_000 * dollars("0.3") // 10**6 + 2_000 * dollars("1.2") // 10**6
    async with AdminClient(daemon.url, ADMIN_TOKEN) as admin:
        spend = await admin.spend(period="month", by="model")
        lines = {line.model: line for line in spend.data}
        assert lines["mystery"].unpriced_calls == 1 and lines["mystery"].cost == 0
        assert lines["house"].unpriced_calls == 0 and lines["house"].cost == 0
    async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/metrics") as response:
        exposition = await response.text()
    assert re.search(r'noor_unpriced_calls_total\{model="mystery",provider="up-openai"\} 1\.0', exposition)


async def cli_json(daemon: Daemon, *args: str) -> dict:
    env = {"NOOR_URL": daemon.url, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    result = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_noor_prices_lists_what_applies_and_flags_the_unpriced(start_daemon, cache_upstream) -> None:
    daemon = await start_daemon(money_config(cache_upstream))
    listed = await cli_json(daemon, "prices")
    by_model = {p["model"]: p for p in listed["data"]}
    assert by_model["mini"]["source"] == "table"
    assert by_model["mini"]["input_per_million"] == 0.15 and by_model["mini"]["cached_input_per_million"] == 0.075
    assert by_model["sonnet"]["cache_write_per_million"] == 3.75
    assert by_model["tuned"]["source"] == "config" and by_model["tuned"]["output_per_million"] == pytest.approx(1.2)
    assert by_model["house"]["source"] == "local" and by_model["house"]["input_per_million"] == 0
    assert by_model["mystery"]["source"] is None and by_model["mystery"]["input_per_million"] is None
    assert listed["table_compiled"] and listed["currency"] == "USD"

    env = {"NOOR_URL": daemon.url, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    text = await asyncio.to_thread(CliRunner().invoke, cli, ["prices"], env=env)
    assert text.exit_code == 0
    assert re.search(r"mystery\s+up-openai\s+nobody-priced-this\s+UNPRICED", text.stdout)
    assert "1 route(s) have no price" in text.stdout


async def test_noor_spend_per_account_key_and_model(start_daemon, cache_upstream) -> None:
    daemon = await start_daemon(money_config(cache_upstream, extra="[plans.free]\n[plans.team]\nbudget_per_month = 1\n"))
    first = await daemon.create_key("first@example.com", plan="team")
    second = await daemon.create_key("second@example.com")
    said = [{"role": "user", "content": "spend"}]
    for key, model, times in ((first, "mini", 2), (second, "gpt41", 1)):
        for _ in range(times):
            await openai_client(daemon, key).chat.completions.create(model=model, messages=said)
    await wait_for_rows(daemon, 3)

    by_account = await cli_json(daemon, "spend", "--by", "account")
    lines = {line["email"]: line for line in by_account["data"]}
    assert lines["first@example.com"]["cost"] == 0.0048 and lines["first@example.com"]["budget"] == 1
    assert lines["first@example.com"]["budget_left"] == pytest.approx(1 - 0.0048)
    assert lines["second@example.com"]["budget"] is None
    # gpt41 through Chat Completions reports MINI's usage: 6,000 × 2 + 4,000 × .5 + 2,000 × 8, per million
    assert lines["second@example.com"]["cost"] == 0.03
    assert by_account["total"] == pytest.approx(0.0048 + 0.03)
    by_key = await cli_json(daemon, "spend", "--by", "key", "--period", "day")
    assert sorted(line["requests"] for line in by_key["data"]) == [1, 2]
    assert all(line["prefix"].startswith("sk-noor-") for line in by_key["data"])
    by_model = await cli_json(daemon, "spend", "--by", "model")
    assert {line["model"] for line in by_model["data"]} == {"mini", "gpt41"}

    env = {"NOOR_URL": daemon.url, "NOOR_ADMIN_TOKEN": ADMIN_TOKEN}
    text = await asyncio.to_thread(CliRunner().invoke, cli, ["spend"], env=env)
    assert text.exit_code == 0
    assert re.search(r"first@example.com\s+2\s+24000\s+0\.0048\s+1\.0000\s+0\.9952", text.stdout), text.stdout
    assert "TOTAL" in text.stdout and "estimates" in text.stdout
    refused = await asyncio.to_thread(CliRunner().invoke, cli, ["spend", "--by", "provider"], env=env)
    assert refused.exit_code == 2
