"""Stat tiles: a title in the border, a big number with a note, and a sparkline of the last hour on the same line."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static


class StatTile(Horizontal):
    """`╭ Requests / min ─╮ │ 142  ▁▂▃▅▇█▆ │`."""

    DEFAULT_CSS = """
    StatTile {
        height: 3;
        border: round $border;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        padding: 0 1;
        background: $surface;
    }
    StatTile > .value { width: auto; text-style: bold; height: 1; padding: 0 1 0 0; }
    StatTile > Sparkline { width: 1fr; height: 1; min-width: 4; }
    """

    def __init__(self, title: str, *, id: str | None = None, spark: bool = True, short: str | None = None) -> None:
        super().__init__(id=id, classes="stat")
        self.border_title = title
        self._title = title
        self._short = short or title
        self._spark = spark

    def on_resize(self) -> None:
        """The short title when the whole one would be cut ("Req / min" in 80 columns)."""
        self.border_title = self._title if self.size.width >= len(self._title) + 4 else self._short

    def compose(self) -> ComposeResult:
        yield Static("–", classes="value")
        if self._spark:
            yield Sparkline([], summary_function=max)

    def show(self, value: str, *, note: str = "", series: Sequence[float | None] | None = None, level: str = "") -> None:
        """`level` is "", "warn" or "bad": the value is coloured to match. The note goes in the bottom border."""
        self.query_one(".value", Static).update(value)
        self.border_subtitle = note
        for name in ("warn", "bad"):
            self.set_class(level == name, f"-{name}")
        if series is not None and self._spark:
            self.query_one(Sparkline).data = [v or 0.0 for v in series]

    @property
    def value_text(self) -> str:
        return str(self.query_one(".value", Static).render())
