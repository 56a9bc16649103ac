"""`noor completion SHELL`: scripts that bash, zsh and fish load without error and that complete real words,
by asking the installed `noor` (so the `noor` of this environment must be on PATH, as it is for a user)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from daemon_process import noor_executable

pytestmark = pytest.mark.engine_independent


def shell_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(noor_executable()).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}


def in_shell(shell: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")
    return subprocess.run([shell, "-c", script], check=False, capture_output=True, text=True, timeout=60, env=shell_env(tmp_path))


def test_bash_loads_the_script_and_completes_commands(tmp_path: Path) -> None:
    result = in_shell("bash", """
        set -e
        source <(noor completion bash)
        complete -p noor
        COMP_WORDS=(noor key cr); COMP_CWORD=2; COMPREPLY=()
        _noor_completion noor
        printf 'reply:%s\\n' "${COMPREPLY[@]}"
        COMP_WORDS=(noor servi); COMP_CWORD=1; COMPREPLY=()
        _noor_completion noor
        printf 'reply:%s\\n' "${COMPREPLY[@]}"
    """, tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "complete -o nosort -F _noor_completion noor" in result.stdout
    assert [line for line in result.stdout.splitlines() if line.startswith("reply:")] == ["reply:create", "reply:service"]


def test_zsh_loads_the_script_and_registers_it(tmp_path: Path) -> None:
    result = in_shell("zsh", """
        autoload -Uz compinit && compinit -u -d "$HOME/.zcompdump" || exit 9
        source <(noor completion zsh) || exit 8
        (( $+functions[_noor_completion] )) || exit 7
        [[ $_comps[noor] == _noor_completion ]] || exit 6
        echo loaded
    """, tmp_path)
    assert result.returncode == 0 and result.stderr == "", (result.returncode, result.stderr)
    assert result.stdout.strip() == "loaded"
    # What the zsh function asks noor for, answered by the installed noor itself.
    answer = subprocess.run([noor_executable()], check=False, capture_output=True, text=True, timeout=60,
                            env={**shell_env(tmp_path), "_NOOR_COMPLETE": "zsh_complete", "COMP_WORDS": "noor acc", "COMP_CWORD": "1"})
    assert answer.stdout.splitlines()[:2] == ["plain", "account"]


def test_fish_loads_the_script_and_completes_commands(tmp_path: Path) -> None:
    result = in_shell("fish", "noor completion fish | source; and complete -C 'noor completion '; and complete -C 'noor acc'", tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    words = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert {"bash", "zsh", "fish", "account"} <= set(words)


def test_install_writes_where_each_shell_looks(tmp_path: Path) -> None:
    env = {**shell_env(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    expected = {
        "bash": tmp_path / "data" / "bash-completion" / "completions" / "noor",
        "zsh": tmp_path / ".zfunc" / "_noor",
        "fish": tmp_path / "config" / "fish" / "completions" / "noor.fish",
    }
    for shell, path in expected.items():
        result = subprocess.run([noor_executable(), "completion", shell, "--install"], check=False, capture_output=True,
                                text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        assert str(path) in result.stdout
        assert "_NOOR_COMPLETE" in path.read_text()
    unnamed = subprocess.run([noor_executable(), "completion"], check=False, capture_output=True, text=True, timeout=60,
                             env={**env, "SHELL": "/bin/tcsh"})
    assert unnamed.returncode == 2 and "name the shell" in unnamed.stderr
