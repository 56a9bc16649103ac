"""The command palette: every screen, every action of every screen, and the app's own commands.

Screen actions come from the screens' bindings (and their `PALETTE` extras), so the palette
and the footer never disagree. Choosing one shows its screen first, then runs the action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from noor_tui.widgets.records import RecordTable

if TYPE_CHECKING:
    from noor_tui.app import NoorApp

Command = tuple[str, str, Callable[[], object]]


def _describe_key(binding: Binding) -> str:
    names = {"slash": "/", "left_square_bracket": "[", "right_square_bracket": "]", "question_mark": "?", "dollar_sign": "$"}
    return names.get(binding.key.split(",")[0], binding.key.split(",")[0])


def commands_for(app: NoorApp) -> list[Command]:
    commands: list[Command] = []
    for number, (mode, label) in enumerate(app.NAV, start=1):
        commands.append((f"Go to {label}", f"Show the {label} screen (key {number})", partial(app.switch_mode, mode)))
    for mode, label in app.NAV:
        screen = app.MODES.get(mode)
        if screen is None:
            continue
        built = _built_screen(app, mode)
        for binding in getattr(screen, "BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.show or not binding.description:
                continue
            if built is not None and built.check_action(binding.action, ()) is False:
                continue  # not offered where it cannot work (Stripe links without billing)
            run: Callable[[], Awaitable[None]] = partial(app.run_in_mode, mode, binding.action)
            commands.append((f"{label}: {binding.description}", f"Key {_describe_key(binding)} on the {label} screen", run))
        for title, help_text, action in getattr(screen, "PALETTE", []):
            if built is not None and built.check_action(action.split("(")[0], ()) is False:
                continue
            commands.append((title, help_text, partial(app.run_in_mode, mode, action)))
    commands += [
        ("Filter this table", "Narrow the table in focus live: words, name:value, !negate, 4xx (/)", lambda: _table_action(app, "filter")),
        ("Sort this table by the next column", "Click a header, or < and > ; r reverses", lambda: _table_action(app, "sort(1)")),
        ("Copy the selected id", "The id of the row under the cursor, to the clipboard (y)", lambda: _table_action(app, "copy")),
        ("Toggle light/dark theme", "Switch between noor-dark and noor-light (Ctrl+T)", app.action_toggle_theme),
        ("Refresh now", "Poll the daemon again at once (Ctrl+R)", lambda: app.screen.run_action("refresh")),
        ("Help", "What each screen shows and its keys (?)", app.action_help),
        ("Quit", "Leave the dashboard (q)", app.exit),
    ]
    return commands


def _built_screen(app: NoorApp, mode: str):
    """The mode's screen if it was built (visited), to ask which of its actions can run."""
    try:
        stack = app.get_screen_stack(mode)
    except KeyError:
        return None
    return stack[0] if stack else None


async def _table_action(app: NoorApp, action: str) -> None:
    tables = [t for t in app.screen.query(RecordTable) if t.display and t.table.display]
    focused = next((t for t in tables if t.table.has_focus or t.filter_input.has_focus), tables[0] if tables else None)
    if focused is not None:
        await focused.run_action(action)


class NoorCommands(Provider):
    """Every action of the dashboard, searchable."""

    @property
    def noor(self) -> NoorApp:
        return cast("NoorApp", self.app)

    async def discover(self) -> Hits:
        for title, help_text, callback in commands_for(self.noor):
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in commands_for(self.noor):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
