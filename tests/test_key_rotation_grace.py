"""Key rotation with an overlap: the old key keeps working through the real OpenAI SDK until the grace
ends, then it is refused; without a grace it is refused at once. The daemon runs on a ManualClock."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from click.testing import CliRunner
from gateway_helpers import openai_client

from noor_daemon.cli import cli
from noor_daemon.client import AdminApiError, AdminClient


async def ask(daemon, key: str) -> str:
    async with openai_client(daemon, key) as client:
        answer = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    return answer.choices[0].message.content or ""


async def test_the_old_key_works_during_the_grace_and_is_refused_after_it(start_daemon, manual_clock) -> None:
    daemon = await start_daemon(clock=manual_clock)
    old = await daemon.create_key("overlap@example.com", name="laptop")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        (listed,) = await admin.list_keys()
        issued = await admin.rotate_key(listed.id, grace=3600)
        assert issued.previous_expires_at is not None and issued.name == "laptop"
        assert (await admin.get_key(listed.id)).state == "active"  # still listed as working
        rotated = [e for e in (await admin.audit(action="key.rotated")).data]
        assert rotated[0].details == {"replacement": issued.id, "prefix": issued.prefix, "grace_seconds": 3600}

        assert await ask(daemon, old) and await ask(daemon, issued.key)  # both work at first
        manual_clock.advance(3599)
        assert await ask(daemon, old)  # one second before the grace ends
        manual_clock.advance(2)
        with pytest.raises(openai.AuthenticationError):
            await ask(daemon, old)
        assert await ask(daemon, issued.key)  # the replacement goes on
        assert (await admin.get_key(listed.id)).state == "expired"


async def test_without_a_grace_the_old_key_is_refused_at_once(start_daemon, manual_clock) -> None:
    daemon = await start_daemon(clock=manual_clock)
    old = await daemon.create_key("cut@example.com")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        (listed,) = await admin.list_keys()
        issued = await admin.rotate_key(listed.id)
        assert issued.previous_expires_at is None
    with pytest.raises(openai.AuthenticationError):
        await ask(daemon, old)
    assert await ask(daemon, issued.key)


async def test_a_grace_never_outlives_the_old_keys_own_expiry(start_daemon, manual_clock) -> None:
    daemon = await start_daemon(clock=manual_clock)
    old = await daemon.create_key("soon@example.com", expires_at=int(manual_clock.now() * 1000) + 600_000)
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        (listed,) = await admin.list_keys()
        await admin.rotate_key(listed.id, grace=86400)
        manual_clock.advance(601)
        with pytest.raises(openai.AuthenticationError):
            await ask(daemon, old)
        with pytest.raises(AdminApiError) as refused:
            await admin._admin("POST", f"/keys/{listed.id}/rotate", json={"grace_seconds": "1h"})
        assert refused.value.status == 400


async def test_noor_key_rotate_grace_on_the_command_line(start_daemon, manual_clock) -> None:
    daemon = await start_daemon(clock=manual_clock)
    old = await daemon.create_key("cli@example.com")
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        (listed,) = await admin.list_keys()
    env = {"NOOR_URL": daemon.url, "NOOR_ADMIN_TOKEN": daemon.admin_token}
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["key", "rotate", listed.id, "--grace", "1h", "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    issued = json.loads(result.output)
    assert issued["previous_expires_at"] and issued["key"].startswith("sk-noor-")
    assert await ask(daemon, old)
    manual_clock.advance(3601)
    with pytest.raises(openai.AuthenticationError):
        await ask(daemon, old)
    assert await ask(daemon, issued["key"])
