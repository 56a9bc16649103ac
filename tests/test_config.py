"""The TOML config: the documented shape works as written; mistakes are named by file, line and key."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from daemon_process import free_port, noor_executable
from gateway_helpers import openai_client

from noor_daemon import config as config_module
from noor_daemon.config import ConfigError, load, parse

pytestmark = pytest.mark.engine_independent

ISSUE_TOML = """\
[server]
host = "127.0.0.1"
port = 8787

[[providers]]
name = "openai"
kind = "openai"                    # openai | anthropic | simulator
base_url = "https://api.openai.com/v1"   # anthropic kind: "https://api.anthropic.com"
api_key = "keyring:openai"         # keyring:NAME | env:VAR | omitted

[[models]]
name = "gpt-4o-mini"               # the name clients send
routes = [{ provider = "openai", model = "gpt-4o-mini" }]

[plans.free]
requests_per_minute = 60
tokens_per_minute = 100000
tokens_per_month = 1000000

[retention]
usage_days = 90
"""


def test_the_documented_config_parses_as_written():
    config = parse(ISSUE_TOML, "noor.toml")
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8787)
    [provider] = config.providers
    assert (provider.name, provider.kind, provider.base_url, provider.api_key) == (
        "openai",
        "openai",
        "https://api.openai.com/v1",
        "keyring:openai",
    )
    [model] = config.models
    assert model.name == "gpt-4o-mini"
    assert [(r.provider, r.model) for r in model.routes] == [("openai", "gpt-4o-mini")]
    free = config.plans["free"]
    assert (free.requests_per_minute, free.tokens_per_minute, free.tokens_per_month) == (60, 100000, 1000000)
    assert config.retention.usage_days == 90
    assert config.default_plan == "free"


def test_the_documented_config_loads_from_a_file(tmp_path):
    file = tmp_path / "config.toml"
    file.write_text(ISSUE_TOML)
    loaded = load(file)
    assert loaded.path == file
    assert loaded.config.models[0].name == "gpt-4o-mini"


def test_anthropic_kind_gets_its_default_base_url():
    config = parse('[[providers]]\nname = "a"\nkind = "anthropic"\napi_key = "env:ANTHROPIC_API_KEY"\n')
    assert config.providers[0].base_url == "https://api.anthropic.com"
    assert config.providers[0].api_key == "env:ANTHROPIC_API_KEY"


# -- mistakes: file, line, key, plain message -----------------------------------------------


def line_of(text: str, fragment: str) -> int:
    [number] = [i for i, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return number


def with_line_changed(fragment: str, replacement: str) -> str:
    assert fragment in ISSUE_TOML
    return ISSUE_TOML.replace(fragment, replacement)


CASES = [
    # (what, text, the line to blame (a fragment of it), words the message must hold)
    ("unknown top-level key", ISSUE_TOML + "\nverbose = true\n", "verbose = true", ["verbose", "unknown key"]),
    ("unknown server key", with_line_changed("port = 8787", "port = 8787\nprot = 1"), "prot = 1", ["server.prot", "unknown key"]),
    (
        "unknown provider key",
        with_line_changed('api_key = "keyring:openai"', 'api_key = "keyring:openai"\norganization = "x"'),
        'organization = "x"',
        ["providers.0.organization", "unknown key"],
    ),
    (
        "unknown key in a route",
        with_line_changed('model = "gpt-4o-mini" }', 'model = "gpt-4o-mini", wieght = 2 }'),
        "wieght = 2",
        ["wieght", "unknown key"],
    ),
    ("unknown plan key", with_line_changed("tokens_per_month = 1000000", "tokens_per_month = 1000000\nrpm = 5"), "rpm = 5", ["plans.free.rpm", "unknown key"]),
    ("unknown section", ISSUE_TOML + "\n[telemetri]\nenabled = true\n", "[telemetri]", ["telemetri", "unknown key"]),
    ("port not a number", with_line_changed("port = 8787", 'port = "eighty"'), 'port = "eighty"', ["server.port", "integer"]),
    ("port out of range", with_line_changed("port = 8787", "port = 70000"), "port = 70000", ["server.port", "65535"]),
    ("unknown provider kind", with_line_changed('kind = "openai"', 'kind = "bedrock"'), 'kind = "bedrock"', ["providers.0.kind", "anthropic"]),
    (
        "a literal secret",
        with_line_changed('api_key = "keyring:openai"', 'api_key = "sk-live-abc123"'),
        'api_key = "sk-live-abc123"',
        ["providers.0.api_key", "secret reference"],
    ),
    ("negative quota", with_line_changed("requests_per_minute = 60", "requests_per_minute = -1"), "requests_per_minute = -1", ["plans.free.requests_per_minute", "greater than"]),
    ("zero retention", with_line_changed("usage_days = 90", "usage_days = 0"), "usage_days = 0", ["retention.usage_days"]),
    (
        "route to an unknown provider",
        with_line_changed('routes = [{ provider = "openai"', 'routes = [{ provider = "opnai"'),
        'provider = "opnai"',
        ["opnai"],
    ),
    (
        "the same provider twice",
        ISSUE_TOML + '\n[[providers]]\nname = "openai"\nkind = "simulator"\n',
        None,  # blamed on the second `name = "openai"`
        ["openai", "twice"],
    ),
    ("default plan that does not exist", 'default_plan = "gold"\n' + ISSUE_TOML, 'default_plan = "gold"', ["gold"]),
    ("a model with no routes", with_line_changed('routes = [{ provider = "openai", model = "gpt-4o-mini" }]', "routes = []"), "routes = []", ["models.0.routes"]),
]


@pytest.mark.parametrize("what, text, blamed, words", CASES, ids=[c[0] for c in CASES])
def test_mistakes_name_file_line_and_key(what, text, blamed, words):
    with pytest.raises(ConfigError) as caught:
        parse(text, "/etc/noor/config.toml")
    message = str(caught.value)
    if blamed is None:
        line = [i for i, l in enumerate(text.splitlines(), start=1) if l == 'name = "openai"'][-1]
    else:
        line = line_of(text, blamed)
    assert message.startswith(f"/etc/noor/config.toml:{line}: "), message
    for word in words:
        assert word in message, message
    assert "pydantic" not in message and "https://" not in message and "Traceback" not in message, message
    assert "\n" not in message.strip(), "one mistake, one line"


def test_several_mistakes_are_all_reported():
    text = with_line_changed("port = 8787", 'port = "x"\nbogus = 1')
    with pytest.raises(ConfigError) as caught:
        parse(text, "c.toml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert {line.split(": ")[0] for line in lines} == {f"c.toml:{line_of(text, 'port = ')}", f"c.toml:{line_of(text, 'bogus')}"}


def test_toml_syntax_errors_name_file_line_and_column():
    text = ISSUE_TOML.replace('name = "gpt-4o-mini"', 'name = "gpt-4o-mini', 1)
    with pytest.raises(ConfigError) as caught:
        parse(text, "broken.toml")
    message = str(caught.value)
    line = line_of(text, 'name = "gpt-4o-mini')
    column = len(text.splitlines()[line - 1]) + 1  # where the string runs into the end of its line
    assert message.startswith(f"broken.toml:{line}:{column}: "), message


def test_a_named_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "missing.toml")
    assert "missing.toml" in str(caught.value) and "no such config file" in str(caught.value)


# -- no config at all: the simulator ---------------------------------------------------------


def test_no_config_file_means_the_simulator(monkeypatch, tmp_path):
    assert not config_module.default_config_path().exists()
    loaded = load()
    assert loaded.path is None
    assert {p.kind for p in loaded.config.providers} == {"simulator"}
    assert {m.name for m in loaded.config.models} == {"sim-gpt", "sim-claude", "sim-embed"}


def test_a_config_without_providers_or_models_keeps_the_simulator():
    config = parse('[server]\nport = 9999\n[retention]\nusage_days = 30\n')
    assert config.server.port == 9999 and config.retention.usage_days == 30
    assert {p.kind for p in config.providers} == {"simulator"}


async def test_no_config_daemon_serves_the_simulator(tmp_path):
    """`noor daemon` with no config file anywhere answers on the simulator, and says so."""
    port = free_port()
    env = {**os.environ, "NOOR_ADMIN_TOKEN": "t0k3n-for-test", "NOOR_DATA_DIR": str(tmp_path / "data")}
    env.pop("NOOR_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        noor_executable(), "daemon", "--port", str(port), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"{url}/healthz") as r:
                        health = await r.json()
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the daemon did not start")
            assert health["simulator_only"] is True
            headers = {"Authorization": "Bearer t0k3n-for-test"}
            async with http.post(f"{url}/admin/v1/accounts", json={"email": "sim@example.com"}, headers=headers) as r:
                assert r.status == 201
            async with http.post(f"{url}/admin/v1/keys", json={"account": "sim@example.com"}, headers=headers) as r:
                key = (await r.json())["key"]

        class Target:
            base_url = f"{url}/v1"

        async with openai_client(Target, key) as client:
            reply = await client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
        assert "simulator" in reply.choices[0].message.content.lower()
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 15)
    assert b"simulator" in err


async def test_a_bad_config_stops_the_daemon_at_start(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(with_line_changed("port = 8787", "port = 8787\nprot = 1"))
    env = {**os.environ, "NOOR_ADMIN_TOKEN": "x", "NOOR_DATA_DIR": str(tmp_path / "data")}
    process = await asyncio.create_subprocess_exec(
        noor_executable(), "daemon", "--config", str(bad), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert f"{bad}:4: server.prot: unknown key".encode() in err, err
    assert b"Traceback" not in err
