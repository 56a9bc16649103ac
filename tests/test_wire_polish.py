"""The edges of the wire, through the real SDKs: unknown paths, wrong methods and oversized headers are
answered in the API's own JSON error shape (so each SDK raises its error class with a readable body),
and `GET /v1/models/{id}` serves both SDKs' `models.retrieve`.
"""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import pytest
from gateway_helpers import anthropic_client, openai_client

pytestmark = pytest.mark.engine_independent


@pytest.fixture
async def gw(start_daemon):
    daemon = await start_daemon()
    return daemon, await daemon.create_key("wire@example.com")


# -- models.retrieve -------------------------------------------------------------------------------


async def test_openai_sdk_retrieves_a_model(gw) -> None:
    daemon, key = gw
    async with openai_client(daemon, key) as client:
        model = await client.models.retrieve("sim-gpt")
        assert (model.id, model.object, model.owned_by) == ("sim-gpt", "model", "noorapi")
        listed = {m.id: m for m in (await client.models.list()).data}
        assert model == listed["sim-gpt"]  # the same object as the list's item
        with pytest.raises(openai.NotFoundError) as raised:
            await client.models.retrieve("no-such-model")
    assert raised.value.body["code"] == "model_not_found"
    assert await daemon.usage_rows() == []  # looking models up is not an LLM call: never metered


async def test_anthropic_sdk_retrieves_a_model(gw) -> None:
    daemon, key = gw
    async with anthropic_client(daemon, key) as client:
        info = await client.models.retrieve("sim-claude")
        assert (info.id, info.type, info.display_name) == ("sim-claude", "model", "sim-claude")
        with pytest.raises(anthropic.NotFoundError) as raised:
            await client.models.retrieve("no-such-model")
    assert raised.value.body["error"]["type"] == "not_found_error"


async def test_retrieve_hides_models_the_key_may_not_use_and_needs_a_key(gw) -> None:
    daemon, _ = gw
    narrow = await daemon.create_key("narrow@example.com", allowed_models=["sim-gpt"])
    async with openai_client(daemon, narrow) as client:
        assert (await client.models.retrieve("sim-gpt")).id == "sim-gpt"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("sim-claude")
    async with openai_client(daemon, "sk-noor-" + "x" * 40) as client:
        with pytest.raises(openai.AuthenticationError) as raised:
            await client.models.retrieve("sim-gpt")
    assert raised.value.body["code"] == "invalid_api_key"


# -- unknown paths and wrong methods ---------------------------------------------------------------


async def test_unknown_path_is_a_json_404_for_both_sdks(gw) -> None:
    daemon, key = gw
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.NotFoundError) as raised:
            await client.files.list()  # GET /v1/files: not something the gateway serves
    assert raised.value.body["code"] == "unknown_url"
    assert raised.value.body["type"] == "invalid_request_error"
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.NotFoundError) as raised_a:
            await client.messages.batches.list()  # GET /v1/messages/batches
    assert raised_a.value.body["type"] == "error"
    assert raised_a.value.body["error"]["type"] == "not_found_error"


async def test_wrong_method_is_a_json_405_naming_the_allowed_ones(gw) -> None:
    daemon, key = gw
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.models.delete("sim-gpt")  # DELETE /v1/models/{id}: only GET is served
    assert raised.value.status_code == 405
    assert raised.value.body["code"] == "method_not_allowed"
    assert "GET" in raised.value.response.headers["allow"]
    async with anthropic_client(daemon, key) as client:
        with pytest.raises(anthropic.APIStatusError) as raised_a:
            await client.get("/v1/messages", cast_to=object)  # GET where only POST is served
    assert raised_a.value.status_code == 405
    assert raised_a.value.body["error"]["type"] == "invalid_request_error"
    assert raised_a.value.response.headers["allow"] == "POST"


async def test_404_and_405_never_echo_the_path_and_leave_other_answers_alone(gw) -> None:
    daemon, _ = gw
    canary = "CANARY-path-7f3a"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/v1/{canary}") as r:
            assert r.status == 404 and r.content_type == "application/json"
            assert canary not in await r.text()
        async with http.put(f"{daemon.url}/v1/chat/completions?{canary}=1") as r:
            assert r.status == 405 and r.content_type == "application/json"
            assert canary not in await r.text()
        async with http.get(f"{daemon.url}/healthz") as r:
            assert r.status == 200
        async with http.get(f"{daemon.url}/admin/v1/{canary}", headers=daemon.admin_headers) as r:
            assert r.status == 404 and r.content_type == "application/json"  # the admin API's own shape
            assert "error" in await r.json()


# -- oversized headers -----------------------------------------------------------------------------


async def test_oversized_header_is_a_json_431_for_both_sdks(gw) -> None:
    daemon, key = gw
    big = {"x-big": "a" * 40_000}
    async with openai_client(daemon, key, default_headers=big) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.models.list()
    assert raised.value.status_code == 431
    assert raised.value.body["code"] == "request_header_fields_too_large"
    async with anthropic_client(daemon, key, default_headers=big) as client:
        with pytest.raises(anthropic.APIStatusError) as raised_a:
            await client.models.list()
    assert raised_a.value.status_code == 431
    assert isinstance(raised_a.value.body, dict)  # parsed JSON, not aiohttp's text echoing the header
    assert "a" * 100 not in str(raised_a.value.body)
