"""`noor completion SHELL`: tab completion for bash, zsh and fish, from click's own machinery.

The script only asks `noor` itself what completes the words typed so far (`_NOOR_COMPLETE=…`), so it
never goes stale as commands change. `--install` writes it where each shell looks on its own
(`noor init` offers the same).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from noor_daemon.cli.common import EXIT_USAGE, fail

SHELLS = ("bash", "zsh", "fish")


def script(root: click.Command, shell: str) -> str:
    """The completion script of `noor` for `shell`."""
    completion_class = get_completion_class(shell)
    assert completion_class is not None, shell
    return completion_class(root, {}, "noor", "_NOOR_COMPLETE").source()


def install_path(shell: str) -> Path:
    """Where `shell` finds completions without any edit of its rc file (zsh: a directory to add to `fpath`)."""
    home = Path.home()
    data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return {
        "bash": data / "bash-completion" / "completions" / "noor",  # bash-completion loads it on first use
        "zsh": home / ".zfunc" / "_noor",
        "fish": config / "fish" / "completions" / "noor.fish",
    }[shell]


def install(root: click.Command, shell: str) -> tuple[Path, str | None]:
    """Write the script where the shell looks; returns the path and what the user still has to do, if anything."""
    path = install_path(shell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script(root, shell), encoding="utf-8")
    if shell == "zsh":
        return path, f"add `fpath+=({path.parent})` before `compinit` in ~/.zshrc, then open a new shell"
    if shell == "bash":
        return path, "needs the bash-completion package (most distributions have it); open a new shell"
    return path, None


def detected_shell() -> str | None:
    """The user's login shell, when it is one we complete for."""
    name = Path(os.environ.get("SHELL", "")).name
    return name if name in SHELLS else None


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS), required=False)
@click.option("--install", "install_it", is_flag=True, help="Write the script where SHELL finds it, instead of printing it.")
def completion(shell: str | None, install_it: bool) -> None:
    """Print (or --install) the tab-completion script for SHELL [default: $SHELL].

    \b
    bash:  source <(noor completion bash)        # or: noor completion bash --install
    zsh:   source <(noor completion zsh)         # after compinit in ~/.zshrc
    fish:  noor completion fish | source
    """
    shell = shell or detected_shell()
    if shell is None:
        fail(f"name the shell: noor completion {{{','.join(SHELLS)}}}", EXIT_USAGE)
    root = click.get_current_context().find_root().command
    if not install_it:
        click.echo(script(root, shell), nl=False)
        return
    path, todo = install(root, shell)
    click.echo(f"Installed {shell} completion in {path}" + (f"; {todo}." if todo else "; open a new shell."))
