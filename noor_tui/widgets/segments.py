"""A row of choices where one is active (`Hour  Day  7 days …`), clickable, changed by keys on the screen."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click
from textual.message import Message
from textual.widgets import Static


class Segment(Static):
    def __init__(self, value: str, label: str, active: bool) -> None:
        super().__init__(label, classes="segment" + (" -active" if active else ""))
        self.value = value

    def on_click(self, event: Click) -> None:
        event.stop()
        parent = self.parent
        if isinstance(parent, Segments):
            parent.select(self.value)


class Segments(Horizontal):
    """`label: [a] b c`; posts `Segments.Changed` when the active value changes."""

    DEFAULT_CSS = """
    Segments { height: 1; width: auto; }
    Segments > .segments-label { width: auto; color: $text-muted; padding: 0 1 0 0; }
    Segments > .segment { width: auto; padding: 0 1; color: $text-muted; }
    Segments > .segment:hover { color: $text; background: $boost; }
    Segments > .segment.-active { color: $text; background: $primary 40%; text-style: bold; }
    """

    @dataclass
    class Changed(Message):
        segments: Segments
        value: str

        @property
        def control(self) -> Segments:
            return self.segments

    def __init__(self, label: str, options: list[tuple[str, str]], value: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.options = options
        self.value = value

    def compose(self) -> ComposeResult:
        if self.label:
            yield Static(self.label, classes="segments-label")
        for value, label in self.options:
            yield Segment(value, label, value == self.value)

    def select(self, value: str) -> None:
        if value == self.value or value not in {v for v, _ in self.options}:
            return
        self.value = value
        for segment in self.query(Segment):
            segment.set_class(segment.value == value, "-active")
        self.post_message(self.Changed(self, value))

    def step(self, delta: int) -> None:
        values = [v for v, _ in self.options]
        index = (values.index(self.value) + delta) % len(values)
        self.select(values[index])
