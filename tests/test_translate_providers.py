"""Provider kinds and presets, against the stand-in: each preset's usual paths and the formats it declares (a call in
a format it serves is relayed, any other translated), Azure OpenAI's deployments, `api-version` and `api-key`, and
the config's checks."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from gateway_helpers import anthropic_client, openai_client, tokens, wait_for_rows
from standin_upstream import OPENAI_KEY_ENV, UPSTREAM_OPENAI_SECRET, reply_text

from noor_daemon.config import ConfigError, parse
from noor_daemon.presets import FORMAT_PATHS, KINDS

pytestmark = pytest.mark.engine_independent

PRESETS = sorted(name for name, kind in KINDS.items() if kind.protocol == "openai" and name != "openai")
KEYLESS = {"ollama", "vllm", "llamacpp", "lmstudio"}
"""Servers people run on their own machine: no key needed."""


def test_every_preset_has_its_documented_defaults():
    for name in PRESETS:
        provider = parse(f'[[providers]]\nname = "p"\nkind = "{name}"\n[[models]]\nname = "m"\nroutes = [{{ provider = "p" }}]').providers[0]
        assert provider.protocol == "openai" and provider.base_url == KINDS[name].base_url
        assert provider.formats == list(KINDS[name].formats) and "chat" in provider.formats


def test_readme_documents_every_kind():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in KINDS:
        assert f"`{name}`" in readme, f"README does not name the kind {name}"


@pytest.mark.parametrize("preset", PRESETS)
async def test_a_preset_is_called_at_its_paths_in_the_formats_it_serves(standin, start_daemon, preset):
    prefix = urlsplit(KINDS[preset].base_url).path
    key = "" if preset in KEYLESS else f'api_key = "env:{OPENAI_KEY_ENV}"'
    daemon = await start_daemon(f"""
[[providers]]
name = "{preset}"
kind = "{preset}"
base_url = "{standin.url}{prefix}"
{key}

[[models]]
name = "m"
routes = [{{ provider = "{preset}", model = "upstream-model" }}]
""")
    secret = await daemon.create_key("preset@example.com")
    async with openai_client(daemon, secret) as client:
        chat = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "via chat"}])
        response = await client.responses.create(model="m", input="via responses")
    async with anthropic_client(daemon, secret) as client:
        message = await client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "via messages"}])
    assert chat.choices[0].message.content == reply_text("via chat")
    assert response.output_text == reply_text("via responses") and message.content[0].text == reply_text("via messages")
    served = KINDS[preset].formats
    expected = [f"{prefix}/chat/completions"]
    expected.append(f"{prefix}/responses" if "responses" in served else f"{prefix}/chat/completions")
    expected.append(f"{prefix}/messages" if "messages" in served else f"{prefix}/chat/completions")
    assert [r.path for r in standin.requests] == expected, "relayed where the preset serves the format, else translated to chat"
    for seen in standin.requests:
        assert seen.body["model"] == "upstream-model"
        if preset in KEYLESS:
            assert "Authorization" not in seen.headers
        else:
            assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_OPENAI_SECRET}"
    rows = await wait_for_rows(daemon, 3)
    assert [tokens(r) for r in rows] == [r.usage for r in standin.requests] and all(r["estimated"] == 0 for r in rows)


def azure_config(standin, extra: str = "") -> str:
    return f"""
[[providers]]
name = "azure"
kind = "azure"
base_url = "{standin.url}"
api_key = "env:{OPENAI_KEY_ENV}"
{extra}

[[models]]
name = "gpt-az"
routes = [{{ provider = "azure", model = "my-gpt-deployment" }}]

[[models]]
name = "embed-az"
routes = [{{ provider = "azure", model = "my-embedding-deployment" }}]
"""


async def test_azure_calls_deployments_with_api_version_and_api_key(standin, start_daemon):
    daemon = await start_daemon(azure_config(standin))
    secret = await daemon.create_key("azure@example.com")
    async with openai_client(daemon, secret) as client:
        await client.chat.completions.create(model="gpt-az", messages=[{"role": "user", "content": "hi azure"}])
        stream = await client.chat.completions.create(model="gpt-az", messages=[{"role": "user", "content": "stream"}], stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == reply_text("stream")
        await client.embeddings.create(model="embed-az", input="vector")
        await client.responses.create(model="gpt-az", input="via responses")  # deployments serve no Responses API: translated
    async with anthropic_client(daemon, secret) as client:
        await client.messages.create(model="gpt-az", max_tokens=20, messages=[{"role": "user", "content": "via messages"}])
    assert [r.path for r in standin.requests] == [
        "/openai/deployments/my-gpt-deployment/chat/completions",
        "/openai/deployments/my-gpt-deployment/chat/completions",
        "/openai/deployments/my-embedding-deployment/embeddings",
        "/openai/deployments/my-gpt-deployment/chat/completions",
        "/openai/deployments/my-gpt-deployment/chat/completions",
    ]
    for seen in standin.requests:
        assert seen.query == "api-version=2024-10-21"
        assert seen.headers["api-key"] == UPSTREAM_OPENAI_SECRET and "Authorization" not in seen.headers
    assert len(await wait_for_rows(daemon, 5)) == 5


async def test_azure_v1_api_names_the_model_in_the_body_and_serves_responses(standin, start_daemon):
    daemon = await start_daemon(azure_config(standin, 'api_version = "v1"'))
    secret = await daemon.create_key("azure@example.com")
    async with openai_client(daemon, secret) as client:
        await client.chat.completions.create(model="gpt-az", messages=[{"role": "user", "content": "hi"}])
        await client.responses.create(model="gpt-az", input="hi")
    assert [(r.path, r.query, r.body["model"]) for r in standin.requests] == [
        ("/openai/v1/chat/completions", "", "my-gpt-deployment"),
        ("/openai/v1/responses", "", "my-gpt-deployment"),
    ]


async def test_a_provider_declares_its_formats(standin, start_daemon):
    """`formats` overrides a kind's: this OpenAI-compatible server serves Anthropic Messages only."""
    daemon = await start_daemon(f"""
[[providers]]
name = "messages-only"
kind = "openai"
base_url = "{standin.openai_base}"
formats = ["messages"]

[[models]]
name = "m"
routes = [{{ provider = "messages-only", model = "upstream" }}]
""")
    secret = await daemon.create_key("formats@example.com")
    async with openai_client(daemon, secret) as client:
        reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "to messages"}])
        with pytest.raises(Exception) as refused:
            await client.embeddings.create(model="m", input="x")
    assert reply.choices[0].message.content == reply_text("to messages")
    assert [r.path for r in standin.requests] == ["/v1/messages"]
    assert refused.value.status_code == 400 and refused.value.body["code"] == "model_api_mismatch"


@pytest.mark.parametrize(
    "provider, blamed",
    [
        ('kind = "azure"', "needs base_url"),
        ('kind = "ollama"\napi_version = "2024-10-21"', "api_version is for kind"),
        ('kind = "vllm"\nformats = []', "at least one format"),
        ('kind = "vllm"\nformats = ["chat", "speech"]', "formats"),
    ],
)
def test_provider_mistakes_are_named(provider, blamed):
    with pytest.raises(ConfigError) as caught:
        parse(f'[[providers]]\nname = "p"\n{provider}\n[[models]]\nname = "m"\nroutes = [{{ provider = "p" }}]', "c.toml")
    assert blamed in str(caught.value) and "c.toml:" in str(caught.value)


def test_format_names_are_the_endpoints():
    assert FORMAT_PATHS["chat"] == "chat/completions" and FORMAT_PATHS["count_tokens"] == "messages/count_tokens"
