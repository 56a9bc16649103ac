"""A suspended account keeps its rights of access and to ask for deletion: only API calls stop.
A suspended key stays refused everywhere (it may be the leaked one)."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from gateway_helpers import openai_client

from noor_daemon.state import ACCOUNTS


async def test_a_suspended_account_can_export_and_ask_for_deletion_but_not_call(daemon) -> None:
    key = await daemon.create_key("suspended@example.com")
    client = openai_client(daemon, key)
    await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "before"}])
    store = daemon.app[ACCOUNTS]
    account = await store.get_account("suspended@example.com")
    await store.update_account(account.id, status="suspended")
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "after"}])
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{daemon.url}/v1/me/export", params={"format": "csv"}) as r:
            assert r.status == 200, await r.text()
            assert (await r.text()).count("\n") == 2  # the header and the call (the refused one names no key)
        async with http.get(f"{daemon.url}/v1/me") as r:
            assert r.status == 200 and (await r.json())["account"]["status"] == "suspended"
        async with http.post(f"{daemon.url}/v1/me/deletion") as r:
            assert r.status == 202
            token = (await r.json())["token"]
        async with http.post(f"{daemon.url}/v1/me/deletion/confirm", json={"token": token}) as r:
            assert r.status == 200 and (await r.json())["deleted"] is True


async def test_a_suspended_key_stays_refused_for_self_service(daemon) -> None:
    key = await daemon.create_key("leaked@example.com")
    store = daemon.app[ACCOUNTS]
    account = await store.get_account("leaked@example.com")
    live = next(k for k in store.keyring.keys.values() if k.account_id == account.id)
    await store.set_key_status(live.id, "suspended")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        async with http.get(f"{daemon.url}/v1/me/export") as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "key_suspended"
