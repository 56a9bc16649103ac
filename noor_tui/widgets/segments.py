"""A row of choices where one is active (`Range  Hour  Day  7 days …`): one Static, clickable, changed by keys on the screen."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.widgets import Static


class Segments(Static):
    """`label: [a] b c`; posts `Segments.Changed` when the active value changes. Under 120 columns the label
    goes, and each option may go by a shorter name (`short`, value to name)."""

    DEFAULT_CSS = """
    Segments { height: 1; width: auto; link-style: none; link-background-hover: $boost; link-color-hover: $text; }
    """

    @dataclass
    class Changed(Message):
        segments: Segments
        value: str

        @property
        def control(self) -> Segments:
            return self.segments

    def __init__(
        self, label: str, options: list[tuple[str, str]], value: str, *, id: str | None = None, short: dict[str, str] | None = None
    ) -> None:
        super().__init__(id=id)
        self.label = label
        self.options = options
        self.short = short or {}
        self.value = value
        self.show_label = True

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        show = self.app.size.width >= 120
        if show != self.show_label:
            self.show_label = show
            self._draw()

    def _draw(self) -> None:
        parts = [f"[$text-muted]{self.label}[/] "] if self.label and self.show_label else []
        for value, label in self.options:
            if not self.show_label:
                label = self.short.get(value, label)
            style = "b $text on $primary 40%" if value == self.value else "$text-muted"
            parts.append(f"[@click=select('{value}')][{style}] {label} [/][/]")
        self.update("".join(parts))

    def action_select(self, value: str) -> None:
        self.select(value)

    def select(self, value: str) -> None:
        if value == self.value or value not in {v for v, _ in self.options}:
            return
        self.value = value
        self._draw()
        self.post_message(self.Changed(self, value))

    def step(self, delta: int) -> None:
        values = [v for v, _ in self.options]
        self.select(values[(values.index(self.value) + delta) % len(values)])
