"""Secrets: `noor secret set/list/delete` on the OS keyring (an in-memory backend here) and on the
explicit 0600 file fallback; the daemon resolving `keyring:NAME` through the chosen backend; no
silent plaintext write where no keyring exists."""

from __future__ import annotations

import importlib
import json
import stat
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from security_helpers import MemoryKeyring, memory_keyring
from standin_upstream import OPENAI_KEY_ENV, standin_config

from noor_daemon import config as config_module
from noor_daemon import secret_store
from noor_daemon.cli import cli
from noor_daemon.secret_store import SERVICE, FileBackend, KeyringBackend, SecretError, resolve

pytestmark = pytest.mark.engine_independent

PROVIDER_SECRET = "sk-proj-provider-secret-from-the-store-0123456789"


@pytest.fixture
def ring():
    with memory_keyring() as memory:
        yield memory


@pytest.fixture(autouse=True)
def _reset_active_backend():
    yield
    secret_store.use_backend(None)


def invoke(args: list[str], *, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, input=input, env=env)


def file_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "file-backend.toml"
    config.write_text(f'[secrets]\nbackend = "file"\n{extra}')
    return config


def keyring_config_for(standin, backend: str = "keyring") -> str:
    """The stand-in config with its OpenAI provider's key as a `keyring:` reference."""
    text = standin_config(standin).replace(f'api_key = "env:{OPENAI_KEY_ENV}"', 'api_key = "keyring:standin-openai"', 1)
    return f'[secrets]\nbackend = "{backend}"\n' + text


# -- the OS keyring --------------------------------------------------------------------------


def test_set_list_delete_on_the_keyring(ring: MemoryKeyring, tmp_path: Path) -> None:
    result = invoke(["secret", "set", "openai"], input=PROVIDER_SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert ring.entries[(SERVICE, "openai")] == PROVIDER_SECRET, "stdin's trailing newline is not part of the secret"
    assert PROVIDER_SECRET not in result.output
    assert invoke(["secret", "set", "anthropic"], input="sk-ant-another-secret-value\n").exit_code == 0

    listed = invoke(["secret", "list"])
    assert listed.exit_code == 0
    assert listed.stdout.split() == ["anthropic", "openai"]
    assert PROVIDER_SECRET not in listed.output
    as_json = json.loads(invoke(["secret", "list", "--json"]).stdout)
    assert as_json["backend"] == "keyring" and as_json["names"] == ["anthropic", "openai"]

    assert invoke(["secret", "delete", "openai"]).exit_code == 0
    assert (SERVICE, "openai") not in ring.entries
    assert invoke(["secret", "list"]).stdout.split() == ["anthropic"]
    assert invoke(["secret", "delete", "openai"]).exit_code == 1, "deleting what is not there says so"
    assert not list(tmp_path.rglob("*.json")), "nothing written to disk"


def test_a_secret_never_comes_from_the_command_line(ring: MemoryKeyring) -> None:
    result = invoke(["secret", "set", "openai", PROVIDER_SECRET])
    assert result.exit_code == 2  # click: unexpected extra argument
    assert ring.entries == {}
    assert invoke(["secret", "set", "openai"], input="\n").exit_code == 2, "an empty secret is refused"
    refused = invoke(["secret", "set", "admin-token"], input="x\n")
    assert refused.exit_code == 2 and "rotate-token" in refused.output
    assert invoke(["secret", "set", "../etc"], input="x\n").exit_code == 2


def test_the_prompt_hides_the_value(ring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    asked: dict = {}

    def prompt(text, **options):
        asked.update(options, text=text)
        return PROVIDER_SECRET

    secret_cli = importlib.import_module("noor_daemon.cli.secret")  # the package exports the group by that name
    monkeypatch.setattr(secret_cli, "_interactive", lambda: True)
    monkeypatch.setattr(click, "prompt", prompt)
    result = invoke(["secret", "set", "openai"])
    assert result.exit_code == 0, result.output
    assert asked["hide_input"] is True and asked["confirmation_prompt"] is True
    assert ring.entries[(SERVICE, "openai")] == PROVIDER_SECRET


async def test_the_daemon_resolves_keyring_references(ring: MemoryKeyring, start_daemon, standin, monkeypatch) -> None:
    monkeypatch.delenv(OPENAI_KEY_ENV)
    ring.set_password(SERVICE, "standin-openai", PROVIDER_SECRET)
    daemon = await start_daemon(keyring_config_for(standin))
    key = await daemon.create_key("keyring@example.com")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}
        async with http.post(f"{daemon.base_url}/chat/completions", json=body) as r:
            assert r.status == 200
    assert standin.last.headers["Authorization"] == f"Bearer {PROVIDER_SECRET}"


# -- no keyring on this machine ------------------------------------------------------------------


def test_without_a_keyring_nothing_is_written_and_doctor_says_so(tmp_path: Path) -> None:
    """The autouse fixture selects keyring's fail backend: a headless server."""
    data = tmp_path / "data"
    result = invoke(["secret", "set", "openai", "--data-dir", str(data)], input=PROVIDER_SECRET + "\n")
    assert result.exit_code == 2
    assert 'backend = "file"' in result.output and "no OS keyring" in result.output
    assert not data.exists() or not any(data.rglob("*")), "never a silent plaintext fallback"
    listed = invoke(["secret", "list", "--data-dir", str(data)])
    assert listed.exit_code == 2 and "no OS keyring" in listed.output, "not an empty list that looks fine"

    with pytest.raises(SecretError, match=r'no OS keyring backend.*backend = "file"'):
        resolve("keyring:openai", what="provider 'openai' api_key", backend=KeyringBackend())

    report = json.loads(invoke(["doctor", "--json", "--data-dir", str(data), "--url", "http://127.0.0.1:9"]).stdout)
    assert report["keyring"]["usable"] is False
    assert report["secrets"]["backend"] == "keyring" and report["secrets"]["usable"] is False
    assert 'backend = "file"' in report["secrets"]["advice"]
    text = invoke(["doctor", "--data-dir", str(data), "--url", "http://127.0.0.1:9"]).stdout
    assert "NO OS keyring backend" in text


async def test_without_a_keyring_the_daemon_refuses_to_start_with_a_clear_message(start_daemon, standin, monkeypatch) -> None:
    monkeypatch.delenv(OPENAI_KEY_ENV)
    with pytest.raises(SecretError, match=r"standin-openai.*no OS keyring backend"):
        await start_daemon(keyring_config_for(standin))


# -- the explicit file fallback ------------------------------------------------------------------


def test_the_file_backend_is_a_0600_file_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = file_config(tmp_path)
    args = ["--config", str(config), "--data-dir", str(data)]
    assert invoke(["secret", "set", "openai", *args], input=PROVIDER_SECRET + "\n").exit_code == 0
    assert invoke(["secret", "set", "smtp", *args], input="smtp-password\n").exit_code == 0
    file = data / "secrets.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert json.loads(file.read_text())["secrets"] == {"openai": PROVIDER_SECRET, "smtp": "smtp-password"}
    assert invoke(["secret", "list", *args]).stdout.split() == ["openai", "smtp"]
    assert invoke(["secret", "delete", "smtp", *args]).exit_code == 0
    assert invoke(["secret", "list", *args]).stdout.split() == ["openai"]
    assert [p.name for p in data.iterdir()] == ["secrets.json"], "no temporary file left behind"

    backend = FileBackend(file)
    assert resolve("keyring:openai", what="x", backend=backend) == PROVIDER_SECRET
    file.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        resolve("keyring:openai", what="x", backend=backend)
    refused = invoke(["secret", "list", *args])
    assert refused.exit_code == 2 and "chmod 600" in refused.output


def test_the_file_backend_can_live_elsewhere(tmp_path: Path) -> None:
    elsewhere = tmp_path / "vault" / "noor-secrets.json"
    config = file_config(tmp_path, f'file = "{elsewhere}"\n')
    assert invoke(["secret", "set", "openai", "--config", str(config)], input="value-123\n").exit_code == 0
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o600


async def test_the_daemon_resolves_through_the_file_backend(tmp_path: Path, start_daemon, standin, monkeypatch) -> None:
    monkeypatch.delenv(OPENAI_KEY_ENV)
    data = tmp_path / "file-daemon"
    config = file_config(tmp_path)
    result = invoke(["secret", "set", "standin-openai", "--config", str(config), "--data-dir", str(data)], input=PROVIDER_SECRET)
    assert result.exit_code == 0, result.output
    daemon = await start_daemon(keyring_config_for(standin, backend="file"), data_dir=data)
    key = await daemon.create_key("file@example.com")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}
        async with http.post(f"{daemon.base_url}/chat/completions", json=body) as r:
            assert r.status == 200
    assert standin.last.headers["Authorization"] == f"Bearer {PROVIDER_SECRET}"


def test_the_secrets_section_is_validated() -> None:
    with pytest.raises(config_module.ConfigError, match="secrets.backend"):
        config_module.parse('[secrets]\nbackend = "plaintext"\n', "test.toml")
