"""Budgets that are never overspent, and costs that are exact.

The rule (`Limiter.admit`, the ADMIT script in Redis): a call is admitted only if what was spent in the
period, plus the worst cases of the calls in flight, plus its own worst case, fits the budget; its worst
case is every byte of the request a prompt token (a token is at least a byte) at the input price plus all
the output it may write (max_tokens, or the model's most) at the output price; when it is committed its
real cost replaces the hold. So the spend never exceeds the budget, under any concurrency, on one daemon
or several, as long as a call costs no more than its worst case — which the prompt bound and max_tokens
guarantee. Tested through the real OpenAI SDK: 200 concurrent calls against a $0.01 monthly budget.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from conftest import SIMULATOR_CONFIG
from gateway_helpers import openai_client
from standin_upstream import standin_config

from noor_daemon.config import Config
from noor_daemon.domain.money import UNIT, PriceBook, per_token, shipped_table, text
from noor_daemon.state import ACCOUNTS, LEDGER
from noor_daemon.state import LIMITER as LIMITER_KEY

BUDGET = "0.01"

PRICED = SIMULATOR_CONFIG + f"""
[prices."sim-gpt"]
input_per_million = 2.0
output_per_million = 8.0
cached_input_per_million = 0.5

[plans.free]

[plans.capped]
budget_per_month = {BUDGET}
"""


def test_costs_equal_tokens_times_the_table_prices_for_real_models() -> None:
    """Hand-computed figures (dollars) for a few models of the shipped table, cached and uncached."""
    book = PriceBook(Config())
    cases = [
        # provider, model, prompt, completion, of the prompt: cached, written to the cache; dollars by hand
        ("openai", "gpt-4o-mini", 1_000_000, 1_000_000, 0, 0, "0.75"),  # 0.15 + 0.60
        ("openai", "gpt-4o-mini", 10_000, 2_000, 4_000, 0, "0.0024"),  # 6,000 × .15 + 4,000 × .075 + 2,000 × .60, per million
        ("openai", "gpt-4.1-2025-04-14", 3_000, 500, 1_000, 0, "0.0085"),  # a dated name: 2,000 × 2 + 1,000 × .5 + 500 × 8
        ("anthropic", "claude-sonnet-4-5-20250929", 20_000, 1_000, 15_000, 4_000, "0.0375"),  # 1,000×3 + 15,000×.3 + 4,000×3.75 + 1,000×15
        ("google", "gemini-2.5-flash", 1_000, 1_000, 0, 0, "0.0028"),  # 1,000 × .30 + 1,000 × 2.50
        ("deepseek", "deepseek-chat", 100_000, 10_000, 60_000, 0, "0.026"),  # 40,000 × .27 + 60,000 × .07 + 10,000 × 1.10
    ]
    for provider, model, prompt, completion, cached, write, dollars in cases:
        price = book.price(provider, model)
        assert price is not None and price.source == "table", model
        assert book.cost(provider, model, prompt, completion, cached, write) == int(Decimal(dollars) * UNIT), model
    compiled, currency, entries = shipped_table()
    assert compiled and currency == "USD" and all(e.source.startswith("https://") for e in entries)
    assert per_token("0.0375") * 10**6 == int(Decimal("0.0375") * UNIT)  # exact, no float on the way


def test_local_models_are_free_unless_configured() -> None:
    config = Config.model_validate({"providers": [{"name": "box", "kind": "simulator"}]})
    assert PriceBook(config).cost("box", "gpt-4o", 1000, 1000) == 0
    priced = Config.model_validate({
        "providers": [{"name": "box", "kind": "simulator"}],
        "prices": {"gpt-4o": {"input_per_million": 1, "output_per_million": 1}},
    })
    assert PriceBook(priced).cost("box", "gpt-4o", 1_000_000, 0) == UNIT
    assert PriceBook(Config()).price("openai", "nobody-priced-this") is None


async def test_each_call_is_metered_with_its_cost_and_a_price_change_rewrites_nothing(start_daemon, tmp_path) -> None:
    daemon = await start_daemon(PRICED)
    key = await daemon.create_key("cost@example.com")
    client = openai_client(daemon, key)
    reply = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "price me"}])
    row = (await daemon.usage_rows())[-1]
    expected = reply.usage.prompt_tokens * per_token(2.0) + reply.usage.completion_tokens * per_token(8.0)
    assert row["cost"] == expected > 0
    hourly = await daemon.app[LEDGER].fetchone("SELECT sum(cost) FROM usage_hourly")
    assert hourly[0] == expected


async def test_a_monthly_budget_holds_under_200_concurrent_calls(start_daemon) -> None:
    daemon = await start_daemon(PRICED)
    key = await daemon.create_key("capped@example.com", plan="capped")
    client = openai_client(daemon, key, timeout=60)

    async def one(i: int) -> tuple[int, dict]:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="sim-gpt", max_tokens=300, messages=[{"role": "user", "content": f"call {i} " + "word " * 40}]
            )
            return 200, dict(raw.headers)
        except openai.RateLimitError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            assert exc.code == "insufficient_quota", body
            assert "budget per month" in str(exc.message) and "resets at" in str(exc.message)
            return 429, {}

    results = await asyncio.gather(*(one(i) for i in range(200)))
    statuses = [s for s, _ in results]
    assert statuses.count(200) > 0 and statuses.count(429) > 0
    remaining = [float(h["x-noor-budget-remaining"]) for s, h in results if s == 200]
    assert all(0 <= r < float(BUDGET) for r in remaining)
    now = datetime.now(UTC)
    month_end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    assert {h["x-noor-budget-reset"] for s, h in results if s == 200} == {month_end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    # Then one call at a time until one is refused: it is refused only when its worst case no longer fits.
    for _ in range(500):
        try:
            await client.chat.completions.create(model="sim-gpt", max_tokens=300, messages=[{"role": "user", "content": "more"}])
        except openai.RateLimitError:
            break
    else:
        raise AssertionError("the budget never ran out")
    account = await daemon.app[ACCOUNTS].get_account("capped@example.com")
    spent = (await daemon.app[LEDGER].fetchone("SELECT sum(cost) FROM usage_events WHERE account_id = ?", (account.id,)))[0]
    budget = int(Decimal(BUDGET) * UNIT)
    assert 0 < spent <= budget, spent
    body_bytes = 200  # the last call's JSON body is well under this; its worst case is at most:
    assert budget - spent < body_bytes * per_token(2.0) + 300 * per_token(8.0)


async def test_a_restart_loses_no_spend_and_counts_none_twice(start_daemon, tmp_path) -> None:
    data = tmp_path / "budget-data"
    first = await start_daemon(PRICED, data_dir=data)
    key = await first.create_key("restart@example.com", plan="capped")
    client = openai_client(first, key)
    for _ in range(5):
        await client.chat.completions.create(model="sim-gpt", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    account = await first.app[ACCOUNTS].get_account("restart@example.com")
    before = first.app[LIMITER_KEY].counters.spent("account", account.id, "month")
    await first.runner.cleanup()
    second = await start_daemon(PRICED, data_dir=data)
    after = second.app[LIMITER_KEY].counters.spent("account", account.id, "month")
    assert after == before > 0
    spent = (await second.app[LEDGER].fetchone("SELECT sum(cost) FROM usage_events WHERE account_id = ?", (account.id,)))[0]
    assert after == spent


async def test_an_unpriced_model_is_refused_under_a_budget_and_served_without_one(standin, start_daemon) -> None:
    daemon = await start_daemon(standin_config(standin, extra="[plans.free]\n\n[plans.capped]\nbudget_per_day = 1.0\n"))
    capped = await daemon.create_key("unpriced@example.com", plan="capped")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await openai_client(daemon, capped).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_priced" and "[prices." in str(caught.value.message)
    free = await daemon.create_key("free@example.com")
    reply = await openai_client(daemon, free).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    assert reply.choices
    row = (await daemon.usage_rows())[-1]
    assert row["cost"] is None  # unpriced: listed as such, never counted as free


async def test_three_daemons_on_postgresql_and_redis_hold_one_budget(tmp_path) -> None:
    """Three `noor daemon` processes, one PostgreSQL ledger, one Redis: 200 concurrent calls spread over them
    against one $0.01 monthly budget spend no more than it."""
    import pg_helpers
    import redis.asyncio as redis_asyncio
    from daemon_process import DaemonProcesses

    redis_url = "redis://127.0.0.1:6379/0"
    try:
        probe = redis_asyncio.from_url(redis_url)
        await probe.ping()
        await probe.aclose()
    except Exception as exc:  # pragma: no cover - CI has the server
        pytest.skip(f"Redis is not reachable ({type(exc).__name__})")
    async with pg_helpers.fresh_database() as url:
        config = PRICED + f'\n[storage]\nurl = "{url}"\n\n[limits]\nredis_url = "{redis_url}"\nredis_prefix = "budget-{tmp_path.name}:"\n'
        processes = DaemonProcesses(tmp_path)
        try:
            daemons = [await processes.start(config, data_dir=tmp_path / f"data{i}", name=f"b{i}") for i in range(3)]
            import aiohttp

            async with aiohttp.ClientSession(headers=daemons[0].admin_headers) as http:
                async with http.post(f"{daemons[0].url}/admin/v1/accounts", json={"email": "shared-budget@example.com", "plan": "capped"}) as r:
                    assert r.status == 201, await r.text()
            key = await daemons[0].create_key("shared-budget@example.com")
            clients = [openai_client(d, key, timeout=60) for d in daemons]

            async def one(i: int) -> int:
                try:
                    await clients[i % 3].chat.completions.create(
                        model="sim-gpt", max_tokens=300, messages=[{"role": "user", "content": f"call {i} " + "word " * 40}]
                    )
                    return 200
                except openai.RateLimitError as exc:
                    assert exc.code == "insufficient_quota"
                    return 429

            statuses = await asyncio.gather(*(one(i) for i in range(200)))
            assert statuses.count(200) > 0 and statuses.count(429) > 0
            import asyncpg

            conn = await asyncpg.connect(url)
            try:
                spent = await conn.fetchval("SELECT sum(cost) FROM usage_events WHERE account_id IS NOT NULL")
            finally:
                await conn.close()
            assert 0 < spent <= int(Decimal(BUDGET) * UNIT), spent
        finally:
            await processes.close()


@given(st.one_of(st.integers(-(10**20), 10**20), st.integers(0, 10**13), st.sampled_from([0, 1, UNIT, 20 * UNIT, 435 * 10**6])))
def test_amounts_are_written_exactly_as_their_decimal(picounits: int) -> None:
    """The budget headers' and messages' amounts: the exact decimal, no exponent, no trailing zeros."""
    assert text(picounits) == f"{(Decimal(picounits) / UNIT).normalize():f}"
