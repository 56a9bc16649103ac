"""The wheel (`python -m build`, what pipx and uv install from a clone) carries every file the packages need:
each non-Python file under noor_daemon/ and noor_tui/ (the dashboard's styles, the price table…), and the
`noor` console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine_independent

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("noor_daemon", "noor_tui")


def test_the_wheel_carries_the_styles_data_files_and_the_console_script(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(source)],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("noorapi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data_files = [
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    assert any(f.endswith(".tcss") for f in data_files) and "noor_daemon/domain/prices.toml" in data_files
    missing = [f for f in data_files if f not in names]
    assert not missing, f"files the packages need that the wheel lacks (add them to package-data): {missing}"
    assert "noor_daemon/cli/__init__.py" in names and "noor_tui/app.py" in names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "noor = noor_daemon.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
