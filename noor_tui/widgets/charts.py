"""Charts: time series drawn with plotext, in the app theme's colours (stacked bars as text: bar_chart.py).

Series arrive as plain lists (one value per bucket, None for "no data"); the chart keeps
them and redraws on new data, on resize and on a theme change, like dolphie's graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plotext._dict import themes as plotext_themes
from textual.color import Color
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
