"""`noor config check` and the config's rough edges: references resolved and named when they fail, `--config`
like every other command, TOML errors at FILE:LINE:COLUMN on start and on reload, reload warnings only for
settings that really changed, and README's config snippets combining into one valid file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import aiohttp
import pytest
from daemon_process import DaemonProcesses, noor_executable

from noor_daemon.config import ConfigError, parse
from noor_daemon.reload import restart_only_changes

pytestmark = pytest.mark.engine_independent

README = Path(__file__).resolve().parent.parent / "README.md"

REFERENCES = """
[secrets]
backend = "file"

[[providers]]
name = "from-env"
kind = "openai"
api_key = "env:NOOR_TEST_PRESENT_KEY"

[[providers]]
name = "missing-env"
kind = "openai"
api_key = "env:NOOR_TEST_ABSENT_KEY"

[[providers]]
name = "stored"
kind = "anthropic"
api_key = "keyring:stored-key"
proxy = "http://alice:keyring:absent-proxy-password@127.0.0.1:3128"

[[models]]
name = "gpt-4o-mini"
routes = [{ provider = "from-env" }]
"""


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([noor_executable(), *args], check=False, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture
def references(tmp_path: Path) -> tuple[Path, Path]:
    """A config with references that resolve and ones that do not, and a data dir whose secrets file holds one."""
    config = tmp_path / "refs.toml"
    config.write_text(REFERENCES)
    data = tmp_path / "data"
    canary = "CANARY-secret-value-5d1e"
    result = subprocess.run([noor_executable(), "secret", "set", "stored-key", "--config", str(config), "--data-dir", str(data)],
                            input=canary + "\n", capture_output=True, text=True, timeout=60)  # read from stdin
    assert result.returncode == 0, result.stderr
    return config, data


def test_check_resolves_every_reference_and_names_the_ones_that_fail(references) -> None:
    config, data = references
    result = run("config", "check", "--config", str(config), "--data-dir", str(data), env={"NOOR_TEST_PRESENT_KEY": "sk-x"})
    assert result.returncode == 1, result  # valid, but the daemon would refuse to start
    lines = {line.split(" = ")[0].strip(): line for line in result.stdout.splitlines()[1:]}
    assert lines["providers[from-env].api_key"].endswith(": resolves")
    assert lines["providers[stored].api_key"].endswith(": resolves")
    assert "NOOR_TEST_ABSENT_KEY is not set" in lines["providers[missing-env].api_key"]
    assert "'absent-proxy-password'" in lines["providers[stored].proxy"]  # a password reference inside the URL
    assert "2 secret reference(s) cannot be resolved" in result.stderr
    assert "CANARY" not in result.stdout + result.stderr  # whether it resolves, never the value


def test_check_takes_config_like_the_other_commands_and_the_positional_form(references, tmp_path) -> None:
    config, data = references
    env = {"NOOR_TEST_PRESENT_KEY": "sk-x", "NOOR_TEST_ABSENT_KEY": "sk-y"}
    both = [run("config", "check", *where, "--data-dir", str(data), "--json", env=env) for where in
            (["--config", str(config)], [str(config)])]
    for result in both:
        assert result.returncode == 1, result.stderr  # the proxy's password is stored nowhere
        report = json.loads(result.stdout)
        assert report["path"] == str(config)
        assert [r["setting"] for r in report["references"] if r["error"]] == ["providers[stored].proxy"]
    env_config = run("config", "check", "--data-dir", str(data), "--json", env={**env, "NOOR_CONFIG": str(config)})
    assert json.loads(env_config.stdout)["path"] == str(config)
    broken = tmp_path / "broken.toml"
    broken.write_text("[server]\nport = 8787\nhost = \"127.0.0.1\n")
    result = run("config", "check", "--config", str(broken))
    assert result.returncode == 2
    assert re.search(rf"{re.escape(str(broken))}:3:\d+: ", result.stderr), result.stderr


# -- TOML errors at FILE:LINE:COLUMN ---------------------------------------------------------------


def test_toml_errors_lead_with_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse('[server]\nport = 8787\n\n[[providers]]\nname = "x\n', "c.toml")
    assert re.match(r"c\.toml:5:\d+: ", str(caught.value)), caught.value
    with pytest.raises(ConfigError) as caught:
        parse("[server]\nport = = 1\n", "c.toml")
    assert str(caught.value).startswith("c.toml:2:8: "), caught.value
    with pytest.raises(ConfigError) as caught:  # tomllib says "at end of document": the end is found in the text
        parse("[server]\nport = 1\n[retention]\nusage_days = [\n\n", "c.toml")
    assert str(caught.value).startswith("c.toml:4:15: "), caught.value


async def test_toml_errors_have_their_position_at_start_and_on_reload(tmp_path) -> None:
    processes = DaemonProcesses(tmp_path)
    try:
        daemon = await processes.start('[server]\nshutdown_timeout = 1\n')
        config = tmp_path / "daemon0.toml"
        config.write_text('[server]\nshutdown_timeout = 1\n[retention]\nusage_days = [\n')
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{daemon.url}/admin/v1/config/reload", headers=daemon.admin_headers) as r:
                assert r.status == 400
                message = (await r.json())["error"]["message"]
        assert re.search(rf"{re.escape(str(config))}:4:\d+: ", message), message
        await daemon.stop()
    finally:
        await processes.close()
    result = run("daemon", "--config", str(config), "--data-dir", str(tmp_path / "data2"), env={"NOOR_ADMIN_TOKEN": "x"})
    assert result.returncode == 2
    assert re.search(rf"{re.escape(str(config))}:4:\d+: ", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


# -- reload warnings ------------------------------------------------------------------------------


BASE = '[server]\nport = 8787\nclient_write_timeout = 60\n\n[limits]\nredis_timeout = 0.25\n\n[retention]\nusage_days = 90\n'


def test_reload_warns_only_about_restart_only_settings_that_differ_from_the_running_ones() -> None:
    running = parse(BASE)
    same, warnings = restart_only_changes(running, parse(BASE))
    assert warnings == [] and same == running
    changed = BASE.replace("port = 8787", "port = 9999").replace("client_write_timeout = 60", "client_write_timeout = 5")
    changed = changed.replace("usage_days = 90", "usage_days = 30").replace("redis_timeout = 0.25", "redis_timeout = 1")
    config, warnings = restart_only_changes(running, parse(changed))
    assert warnings == [
        "[server] port changed; it takes effect at the next restart",
        "[limits] redis_timeout changed; it takes effect at the next restart",
    ]
    assert config.server.port == 8787 and config.limits.redis_timeout == 0.25  # kept as they run…
    assert config.server.client_write_timeout == 5 and config.retention.usage_days == 30  # …the rest applied
    # The file changed back: nothing differs from what runs, so nothing to say.
    assert restart_only_changes(config, parse(BASE))[1] == []
    # Still different on the next reload: still said (the running value has not changed).
    assert restart_only_changes(config, parse(changed))[1] == warnings
    added, warnings = restart_only_changes(running, parse(BASE + '\n[storage]\nurl = "postgresql://noor@db/noor"\n'))
    assert warnings == ["[storage] url changed; it takes effect at the next restart"] and added.storage.url is None


async def test_noor_config_reload_reports_real_changes_only(tmp_path) -> None:
    processes = DaemonProcesses(tmp_path)
    try:
        daemon = await processes.start(BASE)
        config = tmp_path / "daemon0.toml"
        env = {"NOOR_URL": daemon.url, "NOOR_ADMIN_TOKEN": daemon.admin_token}
        unchanged = run("config", "reload", env=env)
        assert unchanged.returncode == 0 and "warning" not in unchanged.stderr, unchanged
        config.write_text(BASE.replace("usage_days = 90", "usage_days = 30").replace("port = 8787", "port = 1"))
        changed = run("config", "reload", "--json", env=env)
        assert json.loads(changed.stdout)["warnings"] == ["[server] port changed; it takes effect at the next restart"]
    finally:
        await processes.close()


# -- README ---------------------------------------------------------------------------------------


def test_readme_config_snippets_combine_into_one_valid_file(tmp_path) -> None:
    """Every ```toml block of README.md, pasted one after the other, is a config `noor config check` accepts."""
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 5
    combined = tmp_path / "readme.toml"
    combined.write_text("\n".join(textwrap.dedent(b) for b in blocks))
    config = parse(combined.read_text(), str(combined))  # raises with FILE:LINE on a clash or a mistake
    assert config.providers and config.models and config.plans
    result = run("config", "check", "--config", str(combined), "--data-dir", str(tmp_path / "data"))
    assert result.returncode in (0, 1), result.stderr  # valid; its keyring references are not on this machine
    assert "OK" in result.stdout or "VALID" in result.stdout

