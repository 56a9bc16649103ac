"""Charts: time series drawn with plotext, stacked bars drawn as text, in the app theme's colours.

Series arrive as plain lists (one value per bucket, None for "no data"); the chart keeps
them and redraws on new data, on resize and on a theme change, like dolphie's graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plotext._dict import themes as plotext_themes
from rich.color import Color as RichColor
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.color import Color
from textual.widget import Widget
from textual_plotext import PlotextPlot

from noor_tui.formatting import nice_ticks, si

Formatter = Callable[[float], str]

PALETTE_VARIABLES = ("primary", "secondary", "accent", "success", "error", "warning")


def theme_rgb(app, variable: str, fallback: str = "#888888") -> tuple[int, int, int]:
    value = app.theme_variables.get(variable, fallback)
    try:
        return Color.parse(value).rgb
    except Exception:
        return Color.parse(fallback).rgb


class Chart(PlotextPlot):
    """A plotext chart whose data and look are set by `show_*` calls, redrawn on theme changes."""

    DEFAULT_CSS = """
    Chart { height: 1fr; min-height: 5; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._draw: Callable[[], None] | None = None
        self.quiet: tuple[int, int, int] = (128, 128, 128)

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._retheme())
        self._retheme()

    def _retheme(self) -> None:
        """A plotext theme from the app's: the panel's background, quiet axes and ticks."""
        variables = self.app.theme_variables
        surface = Color.parse(variables.get("surface", "#161B24"))
        foreground = Color.parse(variables.get("foreground", "#D5DAE5"))
        quiet = surface.blend(foreground, 0.55)
        self.quiet = quiet.rgb
        name = f"noor-chart-{self.app.theme}"
        plotext_themes[name] = [surface.rgb, surface.rgb, quiet.rgb, "default", [self.colour(i) for i in range(6)]]
        self.theme = name  # type: ignore[assignment]
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()  # tick counts follow the height: draw again for the size the chart has now

    def render(self):
        """Nothing until there is data: building an empty plotext figure costs a first paint tens of ms."""
        if self._draw is None:
            return ""
        return super().render()

    def colour(self, index: int) -> tuple[int, int, int]:
        return theme_rgb(self.app, PALETTE_VARIABLES[index % len(PALETTE_VARIABLES)])

    def _redraw(self) -> None:
        if self._draw is not None:
            plt = self.plt
            plt.clear_data()
            plt.clear_figure()
            self._draw()
        self.refresh()

    def _axes(
        self, xs: Sequence[float], xticks: tuple[Sequence[float], Sequence[str]], high: float, fmt: Formatter, pad: float = 0.0
    ) -> None:
        plt = self.plt
        ticks = nice_ticks(high, 3 if self.size.height < 12 else 4)
        plt.yticks(ticks, [fmt(t) for t in ticks])
        plt.ylim(0, ticks[-1])
        if xs:
            plt.xlim(xs[0] - pad, xs[-1] + pad)
        plt.xticks(list(xticks[0]), list(xticks[1]))
        plt.xaxes(True, False)
        plt.yaxes(True, False)

    def show_lines(
        self,
        xs: Sequence[float],
        lines: dict[str, Sequence[float | None]],
        xticks: tuple[Sequence[float], Sequence[str]],
        *,
        fmt: Formatter = si,
        fill: bool = False,
        empty: str = "no data yet",
    ) -> None:
        """One line per entry; None values leave gaps; `empty` is written across a chart with nothing to draw."""
        values = [v for line in lines.values() for v in line if v is not None]
        high = max(values, default=0.0)

        def draw() -> None:
            plt = self.plt
            for index, (label, line) in enumerate(lines.items()):
                filled = fill and len(lines) == 1
                points = [(x, y) for x, y in zip(xs, line, strict=False) if y is not None and (y or not filled)]
                if not points:
                    continue
                px, py = zip(*points, strict=True)
                plt.plot(
                    list(px), list(py), marker="braille", color=self.colour(index),
                    label=label if len(lines) > 1 else None, fillx=filled,
                )
            self._axes(xs, xticks, high, fmt)
            if not high and xs:
                plt.text(empty, x=(xs[0] + xs[-1]) / 2, y=0.5, alignment="center", color=self.quiet)

        self._draw = draw
        self._redraw()

    def show_stacked(
        self,
        xs: Sequence[float],
        stacks: dict[str, Sequence[float]],
        xticks: tuple[Sequence[float], Sequence[str]],
        *,
        fmt: Formatter = si,
    ) -> None:
        """Stacked bars, one colour per entry (bottom first)."""
        totals = [sum(col) for col in zip(*stacks.values(), strict=True)] if stacks else []
        high = max(totals, default=0.0)

        def draw() -> None:
            plt = self.plt
            if stacks and high > 0:
                plt.stacked_bar(
                    list(xs), [list(v) for v in stacks.values()], labels=list(stacks),
                    color=[self.colour(i) for i in range(len(stacks))], width=0.8, minimum=0,
                )
            self._axes(xs, xticks, high, fmt, pad=0.6)

        self._draw = draw
        self._redraw()


EIGHTHS = " ▁▂▃▄▅▆▇█"


class BarChart(Widget):
    """Stacked bars drawn straight as text (eighth blocks), for many buckets at once.

    plotext takes tens of milliseconds for a wide stacked-bar figure; this takes about one, which
    keeps the usage screen's first paint short. Colours are the theme's, in the order `Chart` uses.
    """

    DEFAULT_CSS = """
    BarChart { height: 1fr; min-height: 5; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.stacks: dict[str, list[float]] = {}
        self.labels: list[str] = []
        self.fmt: Formatter = si

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.refresh())

    def colour(self, index: int) -> tuple[int, int, int]:
        return theme_rgb(self.app, PALETTE_VARIABLES[index % len(PALETTE_VARIABLES)])

    def show(self, stacks: dict[str, Sequence[float]], labels: Sequence[str], *, fmt: Formatter = si) -> None:
        """`stacks`: bottom first, one value per bucket; `labels`: one per bucket ("" for none)."""
        self.stacks = {name: [max(0.0, float(v)) for v in values] for name, values in stacks.items()}
        self.labels = list(labels)
        self.fmt = fmt
        self.refresh()

    def render(self) -> RenderResult:
        width, height = self.size
        if not self.labels or width < 10 or height < 4:
            return ""
        styles = [Style(color=RichColor.from_rgb(*self.colour(i))) for i in range(len(self.stacks))]
        quiet = Style(color=RichColor.from_rgb(*theme_rgb(self.app, "foreground")), dim=True)
        n = len(self.labels)
        totals = [sum(column) for column in zip(*self.stacks.values(), strict=True)] if self.stacks else [0.0] * n
        ticks = nice_ticks(max(totals, default=0.0), 3 if height < 12 else 4)
        top = ticks[-1] or 1.0
        legend = Text(no_wrap=True, overflow="ellipsis")
        for index, name in enumerate(self.stacks):
            legend.append("■ ", style=styles[index])
            legend.append(f"{name}  ", style=quiet)
        rows = height - 3  # legend, axis, labels
        tick_texts = [self.fmt(t) for t in ticks]
        margin = max(len(t) for t in tick_texts) + 1
        plot = width - margin - 1
        per = plot / n
        bar = max(1, int(per * 0.75)) if per >= 2 else 1
        grid = [[(" ", None)] * plot for _ in range(rows)]
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
        lines = [legend]
        for row in range(rows):
            line = Text(no_wrap=True)
            line.append(tick_rows.get(row, "").rjust(margin - 1) + ("┤" if row in tick_rows else "│"), style=quiet)
            line.append(" ")
            run, run_style = [], None
            for glyph, style in grid[row]:  # one segment per run of cells: the compositor's cost is per segment
                if style is not run_style and run:
                    line.append("".join(run), style=run_style)
                    run = []
                run_style = style
                run.append(glyph)
            if run:
                line.append("".join(run), style=run_style)
            lines.append(line)
        lines.append(Text(" " * (margin - 1) + "└" + "─" * (plot + 1), style=quiet, no_wrap=True))
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
        lines.append(Text(" " * margin + "".join(axis), style=quiet, no_wrap=True))
        return Text("\n").join(lines)
