"""Small helpers shared by the gateway tests: SDK clients pointed at a daemon, ledger waits."""

from __future__ import annotations

import asyncio
import time

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI


def openai_client(daemon, key: str, **options) -> AsyncOpenAI:
    """The real OpenAI SDK against the daemon; no retries, so each call is exactly one request."""
    return AsyncOpenAI(api_key=key, base_url=daemon.base_url, max_retries=0, timeout=options.pop("timeout", 10), **options)


def anthropic_client(daemon, key: str, **options) -> AsyncAnthropic:
    """The real Anthropic SDK against the daemon (it sends the key as `x-api-key`)."""
    return AsyncAnthropic(api_key=key, base_url=daemon.url, max_retries=0, timeout=options.pop("timeout", 10), **options)


async def wait_for_rows(daemon, count: int, timeout: float = 5.0) -> list[dict]:
    """The usage rows once there are at least `count` (for rows committed after a response)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await daemon.usage_rows()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.02)


def tokens(row: dict) -> tuple[int, int]:
    return row["prompt_tokens"], row["completion_tokens"]
