"""`noor init`: non-interactive setup gives a config `noor config check` accepts, keys in the secrets backend (never
in the config or the output), an admin token and a first API key; the daemon started on that config serves a call
through the OpenAI SDK to the provider with the stored key. Interactive answers work the same way."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from daemon_process import free_port, noor_executable
from gateway_helpers import openai_client
from standin_upstream import UPSTREAM_ANTHROPIC_SECRET, UPSTREAM_OPENAI_SECRET

from noor_daemon.cli import cli

pytestmark = pytest.mark.engine_independent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k not in ("NOOR_URL", "NOOR_CONFIG")}
    return subprocess.run([noor_executable(), *args], check=False, capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL)


async def test_non_interactive_init_gives_a_checked_config_and_a_daemon_that_serves(standin, tmp_path: Path) -> None:
    config, data, port = tmp_path / "noor" / "config.toml", tmp_path / "data", free_port()
    keys = {"OPENAI_API_KEY": UPSTREAM_OPENAI_SECRET, "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC_SECRET}
    result = await asyncio.to_thread(
        run, "init", "--non-interactive", "--provider", "openai", "--provider", "anthropic",
        "--base-url", f"openai={standin.url}/v1", "--base-url", f"anthropic={standin.url}",
        "--model", "openai=standin-gpt", "--model", "anthropic=standin-claude", "--secrets", "file",
        "--email", "first@example.com", "--config", str(config), "--data-dir", str(data), "--port", str(port), "--json",
        env=keys,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    key = report["key"]
    assert key.startswith("sk-noor-") and report["stored_keys"] == ["openai", "anthropic"]
    assert report["url"] == f"http://127.0.0.1:{port}"
    text = config.read_text()
    for secret in keys.values():  # the provider keys went to the backend, nowhere else
        assert secret not in text and secret not in result.stdout + result.stderr
    assert 'api_key = "keyring:openai"' in text and "# " in text  # commented
    secrets_file = data / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert json.loads(secrets_file.read_text())["secrets"]["openai"] == UPSTREAM_OPENAI_SECRET

    checked = await asyncio.to_thread(run, "config", "check", "--config", str(config), "--data-dir", str(data))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": resolves") == 2

    process = await asyncio.create_subprocess_exec(
        noor_executable(), "daemon", "--config", str(config), "--data-dir", str(data),
        env={k: v for k, v in os.environ.items() if k != "NOOR_ADMIN_TOKEN"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    async with http.get(f"{report['url']}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)

        class Target:
            base_url = f"{report['url']}/v1"

        async with openai_client(Target, key) as client:
            reply = await client.chat.completions.create(model="standin-gpt", messages=[{"role": "user", "content": "hello init"}])
        assert "hello init" in reply.choices[0].message.content
        sent = [r for r in standin.requests if r.path == "/v1/chat/completions"][-1]
        assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_OPENAI_SECRET}"  # the stored key, resolved at start
        # The admin token init made is the one the daemon trusts: the CLI finds both from the config and data dir.
        listed = await asyncio.to_thread(run, "account", "list", "--json", "--data-dir", str(data), env={"NOOR_CONFIG": str(config)})
        assert listed.returncode == 0, listed.stderr
        assert [a["email"] for a in json.loads(listed.stdout)] == ["first@example.com"]
        again = await asyncio.to_thread(  # a daemon answering: init adds to it, through its admin API
            run, "init", "-y", "--provider", "simulator", "--secrets", "file", "--email", "second@example.com",
            "--config", str(config), "--data-dir", str(data), "--port", str(port), "--force",
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().startswith("sk-noor-")
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)


def test_init_refuses_what_it_cannot_do_without_asking(tmp_path: Path) -> None:
    base = ["init", "-y", "--secrets", "file", "--data-dir", str(tmp_path / "d"), "--email", "a@example.com"]
    config = tmp_path / "c.toml"
    missing_key = run(*base, "--provider", "openai", "--config", str(config))
    assert missing_key.returncode == 2 and "OPENAI_API_KEY" in missing_key.stderr
    assert not config.exists(), "nothing written before every answer is known"
    no_models = run(*base, "--provider", "ollama", "--config", str(config))
    assert no_models.returncode == 2 and "--model ollama=NAME" in no_models.stderr
    no_provider = run(*base, "--config", str(config))
    assert no_provider.returncode == 2 and "--provider" in no_provider.stderr
    config.write_text("# mine\n")
    exists = run(*base, "--provider", "simulator", "--config", str(config))
    assert exists.returncode == 2 and "--force" in exists.stderr and config.read_text() == "# mine\n"
    referenced = run(*base, "--provider", "openai", "--key-ref", "openai=env:MY_OPENAI_KEY", "--config", str(tmp_path / "r.toml"))
    assert referenced.returncode == 1, referenced.stderr  # written, but the daemon to create the key cannot resolve it
    assert 'api_key = "env:MY_OPENAI_KEY"' in (tmp_path / "r.toml").read_text()


@pytest.fixture
def interactive(monkeypatch):
    """CliRunner's stdin is not a terminal; init asks only when it is."""
    import importlib

    monkeypatch.setattr(importlib.import_module("noor_daemon.cli.init"), "stdin_is_terminal", lambda: True)


def test_interactive_init_asks_and_writes(tmp_path: Path, interactive, monkeypatch) -> None:
    monkeypatch.setenv("SHELL", "/bin/bash")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    answers = "\n".join([
        "simulator,ollama",  # providers, by name
        "http://127.0.0.1:11434/v1",  # ollama's base URL (the default offered)
        "llama3*, qwen2.5",  # ollama's models
        "",  # ollama needs no key
        "ask@example.com",
        "y",  # completion
    ]) + "\n"
    config = tmp_path / "asked.toml"
    result = CliRunner().invoke(cli, ["init", "--secrets", "file", "--config", str(config), "--data-dir", str(tmp_path / "d")],
                                input=answers, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert 'name = "llama3*"' in text and 'name = "qwen2.5"' in text and 'kind = "ollama"' in text
    assert 'name = "sim-gpt"' in text
    assert (tmp_path / "xdg" / "bash-completion" / "completions" / "noor").exists()
    assert "sk-noor-" in result.stdout
