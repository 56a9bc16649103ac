"""Other gateways to compare with (`python -m benchmarks --peers`): LiteLLM's proxy.

LiteLLM is installed by the benchmark into its own virtual environment, cached at
~/.cache/noorapi-bench/litellm-venv (or $NOOR_BENCH_CACHE/litellm-venv), with
`pip install 'litellm[proxy]'` (set NOOR_BENCH_LITELLM to pin another requirement, e.g.
`litellm[proxy]==1.108.7`). It runs as `litellm --config … --num_workers 1`: one model
(`openai/bench` at the stand-in upstream as `api_base`), a master key, no database, the
local model cost map (nothing fetched at start). Where it cannot be installed or started,
the run goes on and says why.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.dashboard import cache_dir
from benchmarks.systems import Process, free_port

MASTER_KEY = "sk-litellm-bench"
REQUIREMENT = os.environ.get("NOOR_BENCH_LITELLM", "litellm[proxy]")
INSTALL_TIMEOUT = 1200


class PeerUnavailable(Exception):
    """The peer could not be installed or started; the message says why."""


def venv_dir() -> Path:
    return cache_dir() / "litellm-venv"


def _marker(venv: Path) -> Path:
    return venv / ".noorapi-bench-installed"


def ensure_litellm(log=print) -> tuple[Path, str]:
    """(litellm executable, version), installing it into the cached venv the first time."""
    venv = venv_dir()
    python, cli = venv / "bin" / "python", venv / "bin" / "litellm"
    marker = _marker(venv)
    if marker.exists() and cli.exists() and marker.read_text().split("\n")[0] == REQUIREMENT:
        return cli, marker.read_text().split("\n")[1]
    if not python.exists():
        log(f"installing {REQUIREMENT} into {venv} (once; cached for later runs)…")
        venv.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        done = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise PeerUnavailable(f"could not create a virtual environment: {done.stderr.strip()[-300:]}")
    if not cli.exists() or not marker.exists():
        try:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", REQUIREMENT],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"pip install {REQUIREMENT} took more than {INSTALL_TIMEOUT}s") from None
        if done.returncode or not cli.exists():
            lines = [line for line in (done.stderr or done.stdout).splitlines() if "ERROR" in line or "error" in line]
            raise PeerUnavailable(f"pip install {REQUIREMENT} failed: {(lines or ['no output'])[-1][:300]}")
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    if not version:
        raise PeerUnavailable("litellm installed but its version cannot be read")
    marker.write_text(f"{REQUIREMENT}\n{version}\n")
    return cli, version


def litellm_config(upstream_url: str) -> str:
    return f"""model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: {upstream_url}/v1
      api_key: sk-upstream-bench
  - model_name: bench-claude
    litellm_params:
      model: anthropic/bench-claude
      api_base: {upstream_url}
      api_key: sk-upstream-bench
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  drop_params: true
  set_verbose: false
"""


def start_litellm(cli: Path, upstream_url: str, workdir: Path) -> Process:
    config = workdir / "litellm.yaml"
    config.write_text(litellm_config(upstream_url))
    port = free_port()
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
    }
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = ""  # no database, whatever the environment says
    process = Process(
        "litellm",
        [str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        port,
        env=env,
        cwd=workdir,
        own_group=True,
    )
    return process


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {MASTER_KEY}"}


def wait_ready(process: Process, body: bytes, timeout: float = 180.0) -> float:
    """Seconds from the process's start to its first 200 on /v1/chat/completions."""
    from benchmarks.systems import first_ok

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not process.alive():
            raise PeerUnavailable(f"litellm exited ({process.popen.returncode}): {process.log_tail(600)}")
        try:
            with socket.create_connection(("127.0.0.1", process.port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.02)
    if not first_ok(process.port, "/v1/chat/completions", body, headers(), deadline):
        raise PeerUnavailable(f"litellm did not answer 200 within {timeout:.0f}s: {process.log_tail(600)}")
    return time.perf_counter() - process.started_at
