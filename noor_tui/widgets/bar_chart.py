"""Stacked bars drawn straight as text (eighth blocks), for many buckets at once: the usage screen's chart.

plotext takes tens of milliseconds for a wide stacked-bar figure; this takes about one. It uses
Textual's line API (`render_line` hands over ready `Strip`s, drawn once per size, data and style):
a `Text` of a thousand coloured runs would cost the first paint some 20 ms more in Textual's
conversion to its own content. Colours are the theme's, in the order `Chart` uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from noor_tui.formatting import nice_ticks, si
from noor_tui.widgets.charts import PALETTE_VARIABLES, Formatter, theme_rgb

EIGHTHS = " ▁▂▃▄▅▆▇█"


class BarChart(Widget):
    """`■ gpt-4o  ■ claude …` over stacked bars, a value axis on the left and time labels below."""

    DEFAULT_CSS = """
    BarChart { height: 1fr; min-height: 5; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.stacks: dict[str, list[float]] = {}
        self.labels: list[str] = []
        self.fmt: Formatter = si
        self._drawn: tuple[Size, list[Strip]] | None = None

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._redraw())

    def colour(self, index: int) -> tuple[int, int, int]:
        return theme_rgb(self.app, PALETTE_VARIABLES[index % len(PALETTE_VARIABLES)])

    def show(self, stacks: dict[str, Sequence[float]], labels: Sequence[str], *, fmt: Formatter = si) -> None:
        """`stacks`: bottom first, one value per bucket; `labels`: one per bucket ("" for none)."""
        self.stacks = {name: [max(0.0, float(v)) for v in values] for name, values in stacks.items()}
        self.labels = list(labels)
        self.fmt = fmt
        self._redraw()

    def _redraw(self) -> None:
        self._drawn = None
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn = None  # drawn with the old background or colours

    def render_line(self, y: int) -> Strip:
        if self._drawn is None or self._drawn[0] != self.size:
            self._drawn = (self.size, self._draw())
        lines = self._drawn[1]
        return lines[y] if y < len(lines) else Strip.blank(self.size.width, self.visual_style.rich_style)

    def _draw(self) -> list[Strip]:
        width, height = self.size
        if not self.labels or width < 10 or height < 4:
            return []
        base = self.visual_style.rich_style
        styles = [base + Style(color=RichColor.from_rgb(*self.colour(i))) for i in range(len(self.stacks))]
        quiet = base + Style(color=RichColor.from_rgb(*theme_rgb(self.app, "foreground")), dim=True)
        n = len(self.labels)
        totals = [sum(column) for column in zip(*self.stacks.values(), strict=True)] if self.stacks else [0.0] * n
        ticks = nice_ticks(max(totals, default=0.0), 3 if height < 12 else 4)
        top = ticks[-1] or 1.0
        rows = height - 3  # legend, axis, labels
        tick_texts = [self.fmt(t) for t in ticks]
        margin = max(len(t) for t in tick_texts) + 1
        plot = width - margin - 1
        per = plot / n
        bar = max(1, int(per * 0.75)) if per >= 2 else 1
        grid: list[list[tuple[str, Style]]] = [[(" ", base)] * plot for _ in range(rows)]
        for i in range(n):
            left = int(i * per + (per - bar) / 2)
            bounds, acc = [], 0.0
            for values in self.stacks.values():
                acc += values[i]
                bounds.append(acc / top * rows * 8)
            for row in range(rows):
                low = (rows - 1 - row) * 8  # eighths below this cell
                height_in = min(8.0, bounds[-1] - low) if bounds else 0.0
                if height_in <= 0:
                    continue
                # the segment covering the middle of what is filled in this cell
                middle = low + height_in / 2
                segment = next((k for k, b in enumerate(bounds) if middle < b), len(bounds) - 1)
                glyph = EIGHTHS[max(1, min(8, round(height_in)))]
                for col in range(left, min(plot, left + bar)):
                    grid[row][col] = (glyph, styles[segment])
        tick_rows = {rows - 1 - min(rows - 1, round(t / top * (rows - 1))): text for t, text in zip(ticks, tick_texts, strict=True)}

        legend: list[Segment] = []
        for index, name in enumerate(self.stacks):
            legend += [Segment("■ ", styles[index]), Segment(f"{name}  ", quiet)]
        lines = [_fit(legend, width, base)]
        for row in range(rows):
            line = [Segment(tick_rows.get(row, "").rjust(margin - 1) + ("┤" if row in tick_rows else "│"), quiet), Segment(" ", base)]
            run, run_style = [], base
            for glyph, style in grid[row]:  # one segment per run of cells: the compositor's cost is per segment
                if style is not run_style and run:
                    line.append(Segment("".join(run), run_style))
                    run = []
                run_style = style
                run.append(glyph)
            if run:
                line.append(Segment("".join(run), run_style))
            lines.append(Strip(line, width))
        lines.append(Strip([Segment(" " * (margin - 1) + "└" + "─" * (plot + 1), quiet)], width))
        axis = [" "] * (plot + 1)
        free = 0
        for i, label in enumerate(self.labels):
            if not label:
                continue
            start = int(i * per + per / 2) - len(label) // 2 + 1
            if start < free or start + len(label) > len(axis):
                continue
            axis[start : start + len(label)] = list(label)
            free = start + len(label) + 1
        lines.append(Strip([Segment(" " * margin + "".join(axis), quiet)], width))
        return lines


def _fit(segments: list[Segment], width: int, base: Style) -> Strip:
    """One line of exactly `width` cells: padded, or cut with an ellipsis."""
    length = sum(cell_len(segment.text) for segment in segments)
    if length <= width:
        return Strip([*segments, Segment(" " * (width - length), base)], width)
    kept = list(Strip(segments, length).crop(0, width - 1))
    return Strip([*kept, Segment("…", kept[-1].style if kept else base)], width)
