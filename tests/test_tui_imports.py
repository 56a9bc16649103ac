"""The dashboard reaches the daemon through `noor_daemon.client` only (no other daemon module, no
database), and stays on Textual's public API: `pyproject.toml` allows any Textual from 8 on, so the
dashboard must not read, set or override anything private of Textual's."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import textual
import textual_plotext

import noor_tui

pytestmark = pytest.mark.engine_independent

PACKAGE = Path(noor_tui.__file__).parent
TEXTUAL_PACKAGES = ("textual", "textual_plotext")
"""Textual and the Textual widget packages the dashboard builds on."""


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    return names


def is_client(module: str) -> bool:
    """`noor_daemon.client`, a package whose modules re-export through it."""
    return module == "noor_daemon.client" or module.startswith("noor_daemon.client.")


def test_noor_tui_imports_only_the_client_of_the_daemon() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        bad = {m for m in imported_modules(path) if m.split(".")[0] == "noor_daemon" and not is_client(m)}
        bad |= {m for m in imported_modules(path) if m.split(".")[0] in ("sqlite3", "aiosqlite")}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def test_importing_the_dashboard_loads_no_daemon_module() -> None:
    """At run time too: importing the app pulls in the client and nothing else of the daemon."""
    code = (
        "import sys, noor_tui.app; "
        "print(sorted(m for m in sys.modules if m.startswith('noor_daemon') and m != 'noor_daemon' "
        "and m != 'noor_daemon.client' and not m.startswith('noor_daemon.client.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- Textual's private names -----------------------------------------------------------------------


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def is_textual_module(module: str) -> bool:
    return module.split(".")[0] in TEXTUAL_PACKAGES


@functools.cache
def textual_vocabulary() -> frozenset[str]:
    """Every private name in Textual's source: attributes it reads or sets on anything, and what its classes define."""
    names: set[str] = set()
    for package in (textual, textual_plotext):
        for path in Path(package.__file__).parent.rglob("*.py"):
            names |= private_names_defined_or_used(ast.parse(path.read_text(encoding="utf-8")))
    return frozenset(names)


def private_names_defined_or_used(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            names.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            names |= {name for name in class_body_names(node) if is_private(name)}
    return names


def class_body_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            names |= {target.id for target in item.targets if isinstance(target, ast.Name)}
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    return names


def textual_private_names_of(cls: type) -> frozenset[str]:
    """The private names the Textual classes in `cls`'s MRO define or keep on their instances."""
    names: set[str] = set()
    for base in cls.__mro__:
        if is_textual_module(getattr(base, "__module__", "") or ""):
            names |= private_names_of_textual_class(base)
    return frozenset(names)


@functools.cache
def private_names_of_textual_class(base: type) -> frozenset[str]:
    names = {name for name in vars(base) if is_private(name)}
    slots = getattr(base, "__slots__", ())
    names |= {name for name in ([slots] if isinstance(slots, str) else slots) if is_private(name)}
    try:
        source = textwrap.dedent(inspect.getsource(base))
    except (OSError, TypeError):  # made at run time: any of Textual's names may be its
        return textual_vocabulary()
    for node in ast.walk(ast.parse(source)):
        on_self = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
        if on_self and is_private(node.attr):
            names.add(node.attr)
    return frozenset(names)


def project_private_names() -> set[str]:
    """Private names the dashboard defines itself (on its own objects and classes)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names |= {name for name in class_body_names(node) if is_private(name)}
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and is_private(node.attr)
            ):
                names.add(node.attr)
    return names


def receiver_and_name(node: ast.AST) -> tuple[ast.expr, str] | None:
    """`x._name`, or `getattr(x, "_name")` (also setattr, hasattr, delattr): what is reached, and its name."""
    if isinstance(node, ast.Attribute) and is_private(node.attr):
        return node.value, node.attr
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and is_private(node.args[1].value)
    ):
        return node.args[0], node.args[1].value
    return None


def textual_private_uses(tree: ast.Module, namespace: dict, own: set[str]) -> list[str]:
    """Where `tree` (a module whose top-level names are `namespace`) touches something private of Textual's.

    - an import of a private Textual module or name (`textual._compositor`, `from textual.app import _x`);
    - on `self`/`cls` (and `super()`) inside a class: a private name that a Textual class of that class's
      MRO defines or keeps on its instances (`self._css_update_count`), or a method or attribute of the
      class body overriding one; the class's own private names (`self._timer`) are its business;
    - on anything else (`self.app._x`, `app._x`, `screen._x`, `event._x`): any private name that is not
      one of the dashboard's own, or that Textual uses too.
    """
    found: list[str] = []

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_textual_module(alias.name) and any(is_private(part) for part in alias.name.split(".")):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and is_textual_module(node.module or ""):
            if any(is_private(part) for part in (node.module or "").split(".")):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            for alias in node.names:
                if is_private(alias.name):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")

    def textual_names_for(qualname: list[str | None]) -> frozenset[str]:
        """What is private to Textual in the MRO of the class at `qualname` (None: inside a function)."""
        obj: object = namespace
        for part in qualname:
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part or "", None)
        if inspect.isclass(obj):
            return textual_private_names_of(obj)
        return textual_vocabulary()  # a class made inside a function: can't tell its bases, so any of Textual's names

    def visit(node: ast.AST, qualname: list[str | None], names_of_class: frozenset[str] | None) -> None:
        if isinstance(node, ast.ClassDef):
            inner = [*qualname, node.name]
            names = textual_names_for(inner)
            for name in sorted(class_body_names(node) & names):
                found.append(f"line {node.lineno}: {node.name}.{name} overrides Textual's")
            for child in ast.iter_child_nodes(node):
                visit(child, inner, names)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.iter_child_nodes(node):
                visit(child, [*qualname, None], names_of_class)
            return
        reached = receiver_and_name(node)
        if reached is not None:
            receiver, name = reached
            on_self = isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
            on_super = isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super"
            if (on_self or on_super) and names_of_class is not None:
                if name in names_of_class:
                    found.append(f"line {node.lineno}: {ast.unparse(receiver)}.{name}")
            elif name not in own or name in textual_vocabulary():
                found.append(f"line {node.lineno}: {ast.unparse(receiver)}.{name}")
        for child in ast.iter_child_nodes(node):
            visit(child, qualname, names_of_class)

    for child in ast.iter_child_nodes(tree):
        visit(child, [], None)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_dashboard_touches_nothing_private_of_textual() -> None:
    """No `self.app._css_update_count`, `app._screen_stacks`, `getattr(app, "_init_mode")`, `textual._x`:
    what Textual keeps private may change in any release that `textual>=8` lets in."""
    own = project_private_names()
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = importlib.import_module(module_name(path))
        uses = textual_private_uses(ast.parse(path.read_text(encoding="utf-8")), vars(module), own)
        if uses:
            offenders[str(path.relative_to(PACKAGE))] = uses
    assert offenders == {}


SAMPLE = '''
from textual.app import App, _private_helper
from textual._compositor import Compositor
from textual.screen import Screen


class Mine(Screen):
    _cache = None

    def __init__(self) -> None:
        super().__init__()
        self._timer = None
        self._css_update_count = 0

    def _refresh_layout(self, size) -> None:
        pass

    def poll(self, app: App) -> None:
        self._timer = self.app._css_update_count
        app._screen_stacks.clear()
        getattr(self.app, "_init_mode", None)
        getattr(self, "_init_mode", None)  # a Screen has none: the dashboard's own
        self.screen._early
        self.screen._timer  # the dashboard's own name, but Textual's too: on something not `self`, flagged
        super()._on_screen_resume(None)


class MyApp(App):
    def prepare(self) -> None:
        self._switching = True
        getattr(self, "_init_mode")("usage")
        setattr(self, "_current_mode", "usage")


class NotTextual:
    def __init__(self) -> None:
        self._screen_stacks = {}
'''


def test_the_scan_finds_textual_private_names_and_leaves_the_dashboards_own_alone() -> None:
    namespace: dict = {}
    runnable = SAMPLE.replace(", _private_helper", "").replace("from textual._compositor import Compositor", "")
    exec(compile(runnable, "<sample>", "exec"), namespace)  # noqa: S102 - the sample's classes, for their MROs
    uses = textual_private_uses(ast.parse(SAMPLE), namespace, own={"_timer", "_cache", "_early", "_switching", "_screen_stacks"})
    found = {use.split(": ", 1)[1] for use in uses}
    assert found == {
        "from textual.app import _private_helper",
        "from textual._compositor import ...",
        "self._css_update_count",
        "Mine._refresh_layout overrides Textual's",
        "self.app._css_update_count",
        "app._screen_stacks",
        "self.app._init_mode",
        "self.screen._timer",
        "super()._on_screen_resume",
        "self._init_mode",
        "self._current_mode",
    }, uses
