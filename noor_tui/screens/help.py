"""The help screen: every screen, what it shows and its keys, written from the screens' own bindings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown


def _key(binding: Binding) -> str:
    names = {
        "question_mark": "?", "slash": "/", "left_square_bracket": "[", "right_square_bracket": "]",
        "escape": "Esc", "dollar_sign": "$", "ctrl+r": "Ctrl+R", "ctrl+t": "Ctrl+T", "ctrl+p": "Ctrl+P", "f1": "F1",
    }
    return " / ".join(names.get(k, k) for k in binding.key.split(","))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Help · Esc closes"
            yield Markdown(self.text(), id="help")

    def text(self) -> str:
        app = self.app
        nav = getattr(app, "NAV", [])
        modes = getattr(app, "MODES", {})
        lines = [
            "# NoorAPI dashboard",
            "",
            "Numbers switch screens; **Ctrl+P** opens the command palette (every action is there); "
            "**Ctrl+T** switches between the dark and light themes; **Ctrl+R** refreshes now; **q** quits.",
            "",
            (
                "Every table works the same way: **/** filters it live (words, `name:value` such as `status:4xx`, "
                "`account:ada` or `model:gpt`, `!` to negate, **Esc** clears), a click on a header or **<** **>** "
                "sorts it and **r** reverses, **Enter** opens the row's details, **y** copies its id."
            ),
            "",
            "The dashboard talks to the daemon over its HTTP API only. It never shows message content: "
            "NoorAPI does not keep any. When the daemon is down or refuses the credentials, a red line says "
            "so and the dashboard reconnects by itself.",
            "",
        ]
        for number, (mode, label) in enumerate(nav, start=1):
            screen = modes.get(mode)
            lines.append(f"## {number} · {label}")
            lines.append("")
            if screen is not None and getattr(screen, "HELP", ""):
                lines.append(screen.HELP)
                lines.append("")
            keys = [b for b in getattr(screen, "BINDINGS", []) if isinstance(b, Binding) and b.description and b.show]
            if keys:
                lines.append(" · ".join(f"**{_key(b)}** {b.description}" for b in keys))
                lines.append("")
        return "\n".join(lines)
