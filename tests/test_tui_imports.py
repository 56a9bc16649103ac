"""The dashboard reaches the daemon through `noor_daemon.client` only: no other daemon module, no database."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import noor_tui

PACKAGE = Path(noor_tui.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    return names


def test_noor_tui_imports_only_the_client_of_the_daemon() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        bad = {m for m in imported_modules(path) if m.startswith("noor_daemon") and m != "noor_daemon.client"}
        bad |= {m for m in imported_modules(path) if m.split(".")[0] in ("sqlite3", "aiosqlite")}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def test_importing_the_dashboard_loads_no_daemon_module() -> None:
    """At run time too: importing the app pulls in the client and nothing else of the daemon."""
    code = (
        "import sys, noor_tui.app; "
        "print(sorted(m for m in sys.modules if m.startswith('noor_daemon') and m not in ('noor_daemon', 'noor_daemon.client')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
