"""The coding agents people point at the gateway, end to end: Claude Code (`claude -p`, npm @anthropic-ai/claude-code,
Anthropic Messages) and OpenAI's Codex CLI (`codex exec`, npm @openai/codex, the Responses API) each run a
tool-using task through the daemon — once on the built-in simulator (what `noor demo` serves), once on a model
of an OpenAI-kind stand-in that serves Chat Completions only (so every call is translated) — and must finish
without an error, having run the tool (its file is on disk), with each call metered once.

The CLIs come from the npm registry: `.ci/run` installs them into NOOR_AGENTS_DIR; otherwise they are installed
once into ~/.cache/noorapi-tests/agents. These tests are skipped only when Node.js is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from gateway_helpers import wait_for_rows

from noor_daemon.state import PROXY

pytestmark = pytest.mark.engine_independent

AGENTS = {"claude": ("@anthropic-ai/claude-code", "2.1.197"), "codex": ("@openai/codex", "0.171.0")}
"""The CLIs and the versions these tests were written against (kept in step with .ci/run)."""

TIMEOUT = 180


def _installed(root: Path, package: str) -> str | None:
    manifest = root / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="session")
def agent_bin() -> Path:
    """node_modules/.bin with both CLIs at their pinned versions, installed from the npm registry if need be."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js (node and npm) is not installed: Claude Code and Codex CLI cannot run")
    root = Path(os.environ.get("NOOR_AGENTS_DIR") or Path.home() / ".cache" / "noorapi-tests" / "agents")
    missing = [f"{package}@{version}" for package, version in AGENTS.values() if _installed(root, package) != version]
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", *missing],
            capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, f"npm install {' '.join(missing)} failed: {done.stderr[-2000:]}"
    return root / "node_modules" / ".bin"


def simulator_config() -> str:
    return """
[[providers]]
name = "simulator"
kind = "simulator"
latency_scale = 0

[[models]]
name = "sim-claude"
routes = [{ provider = "simulator" }]

[[models]]
name = "sim-gpt"
routes = [{ provider = "simulator" }]
"""


def standin_config(standin) -> str:
    """A local model as people run it: the vLLM preset, assumed to serve Messages and Responses; this server serves
    Chat Completions only (it answers 404 elsewhere), so the gateway learns that and translates."""
    return f"""
[[providers]]
name = "local"
kind = "vllm"
base_url = "{standin.openai_base}"

[[models]]
name = "qwen-local"
routes = [{{ provider = "local", model = "qwen2.5-coder" }}]
"""


def count_calls(daemon, provider: str) -> list[str]:
    """Every call the daemon sends to `provider`, as its endpoint (wraps the upstream's send)."""
    upstream = daemon.app[PROXY].router._upstreams[provider]
    calls: list[str] = []
    send = upstream.send

    async def counted(endpoint, *args, **kwargs):
        calls.append(endpoint)
        return await send(endpoint, *args, **kwargs)

    upstream.send = counted
    return calls


async def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"{argv[0]} did not finish within {TIMEOUT}s: {output.decode(errors='replace')[-3000:]}")
    return process.returncode, output.decode(errors="replace")


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: the CLIs' own config in a temp home, nothing of the developer's."""
    keep = {name: os.environ[name] for name in ("PATH", "LANG", "TMPDIR", "SYSTEMROOT") if name in os.environ}
    return {**keep, "HOME": str(home), "NO_COLOR": "1", "NO_PROXY": "127.0.0.1,localhost"}


async def claude(agent_bin: Path, daemon, key: str, model: str, work: Path) -> str:
    env = {
        **base_env(work.parent / "claude-home"),
        "ANTHROPIC_BASE_URL": daemon.url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,  # any side call goes through the gateway too
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    prompt = "Use the Bash tool to run `echo noor-claude-e2e > proof.txt`"
    code, output = await run([str(agent_bin / "claude"), "-p", prompt, "--model", model, "--output-format", "json",
                              "--allowedTools", "Bash"], env, work)
    assert code == 0, output[-3000:]
    result = json.loads(output.strip().splitlines()[-1])
    assert result["is_error"] is False and result["subtype"] == "success", result
    return output


async def codex(agent_bin: Path, daemon, key: str, model: str, work: Path) -> str:
    home = work.parent / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(f"""
model = "{model}"
model_provider = "noor"
web_search = "disabled"

[model_providers.noor]
name = "NoorAPI"
base_url = "{daemon.base_url}"
env_key = "NOOR_API_KEY"
wire_api = "responses"
""")
    env = {**base_env(work.parent / "home"), "CODEX_HOME": str(home), "NOOR_API_KEY": key}
    prompt = "Use exec_command to run `echo noor-codex-e2e > proof.txt`"
    code, output = await run([str(agent_bin / "codex"), "exec", "--skip-git-repo-check", "-s", "danger-full-access", prompt],
                             env, work)
    assert code == 0, output[-3000:]
    assert "ERROR" not in output and "stream error" not in output.lower(), output[-3000:]
    return output


async def check_metered(daemon, calls: list, endpoint: str) -> None:
    """Each call the CLI made is one usage row, with the provider's tokens, none refused."""
    rows = await wait_for_rows(daemon, len(calls))
    assert len(calls) >= 2, "a tool-using task takes a call for the tool and one after its result"
    assert len(rows) == len(calls), (rows, calls)
    assert all(r["status"] == 200 and r["endpoint"] == endpoint and r["estimated"] == 0 for r in rows), rows


async def test_claude_code_on_the_simulator(agent_bin, start_daemon, tmp_path):
    daemon = await start_daemon(simulator_config())
    key = await daemon.create_key("claude@example.com")
    calls = count_calls(daemon, "simulator")
    work = tmp_path / "work"
    work.mkdir()
    await claude(agent_bin, daemon, key, "sim-claude", work)
    assert (work / "proof.txt").read_text() == "noor-claude-e2e\n", "the tool ran"
    await check_metered(daemon, calls, "messages")


async def test_claude_code_on_an_openai_kind_model(agent_bin, start_daemon, standin, tmp_path):
    standin.serve_only("/v1/chat/completions")
    daemon = await start_daemon(standin_config(standin))
    key = await daemon.create_key("claude@example.com")
    work = tmp_path / "work"
    work.mkdir()
    await claude(agent_bin, daemon, key, "qwen-local", work)
    assert (work / "proof.txt").read_text() == "noor-claude-e2e\n", "the tool ran"
    answered = [r for r in standin.requests if r.completed]
    assert {r.path for r in answered} == {"/v1/chat/completions"}, "translated: the provider serves Chat Completions only"
    assert any(r.body.get("tools") for r in answered)
    await check_metered(daemon, answered, "messages")


async def test_codex_on_the_simulator(agent_bin, start_daemon, tmp_path):
    daemon = await start_daemon(simulator_config())
    key = await daemon.create_key("codex@example.com")
    calls = count_calls(daemon, "simulator")
    work = tmp_path / "work"
    work.mkdir()
    await codex(agent_bin, daemon, key, "sim-gpt", work)
    assert (work / "proof.txt").read_text() == "noor-codex-e2e\n", "the tool ran"
    await check_metered(daemon, calls, "responses")


async def test_codex_on_an_openai_kind_model(agent_bin, start_daemon, standin, tmp_path):
    standin.serve_only("/v1/chat/completions")
    daemon = await start_daemon(standin_config(standin))
    key = await daemon.create_key("codex@example.com")
    work = tmp_path / "work"
    work.mkdir()
    await codex(agent_bin, daemon, key, "qwen-local", work)
    assert (work / "proof.txt").read_text() == "noor-codex-e2e\n", "the tool ran"
    answered = [r for r in standin.requests if r.completed]
    assert {r.path for r in answered} == {"/v1/chat/completions"}
    await check_metered(daemon, answered, "responses")
