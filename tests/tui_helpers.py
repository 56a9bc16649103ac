"""Helpers for the dashboard tests: waiting on a headless app, reading its widgets, sending traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
from textual.pilot import Pilot
from textual.widgets import DataTable, Static


async def wait_until(pilot: Pilot, predicate: Callable[[], object], timeout: float = 8.0, what: str = "condition") -> None:
    """Let the app run until `predicate()` is true."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # a widget not mounted yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def wait_for_screen(pilot: Pilot, kind: type, timeout: float = 8.0):
    """The app's current screen once it is a `kind` and composed."""
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, kind) and app.screen.is_mounted and app.screen.children, timeout, what=kind.__name__)
    await pilot.pause()
    return app.screen


def built_modes(app) -> list[str]:
    """The modes whose screen exists (visited, or built while the dashboard idled)."""
    modes = []
    for mode, _ in app.NAV:
        try:
            app.get_screen_stack(mode)
        except KeyError:
            continue
        modes.append(mode)
    return modes


def table_text(table: DataTable) -> str:
    """Every cell of a table as plain text, row by row."""
    lines = []
    for row_key in table.rows:
        lines.append(" | ".join(str(getattr(cell, "plain", cell)) for cell in table.get_row(row_key)))
    return "\n".join(lines)


def static_text(widget: Static) -> str:
    return str(widget.render())


def screen_text(app) -> str:
    """What is on the screen, as text (from a screenshot, so it is what a person would see)."""
    import re

    svg = app.export_screenshot()
    texts = re.findall(r">([^<>]*)</text>", svg)
    return "".join(t.replace("&#160;", " ") for t in texts)


async def wait_for_text(pilot: Pilot, *needles: str, timeout: float = 8.0) -> str:
    """The screen's text once it shows every needle (a new screen may take a frame to paint)."""
    await wait_until(pilot, lambda: all(n in screen_text(pilot.app) for n in needles), timeout, what=f"{needles} on screen")
    return screen_text(pilot.app)


async def chat(url: str, key: str, *, count: int = 1, model: str = "sim-gpt", content: str = "hello") -> list[int]:
    statuses = []
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 12}
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            async with http.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
                await r.read()
                statuses.append(r.status)
    return statuses


async def settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)
