"""What keeps a screen's first visit short (issue #5: the usage screen paints in under 200 ms).

Some of it leans on how Textual styles and shows a new screen (`NoorApp.refresh_css`,
`NoorScreen.on_screen_resume`); these tests say so at once if a Textual upgrade changes that, rather
than a benchmark later.
The figure itself: `python -m benchmarks.tui_usage`.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC

from textual.app import App, ComposeResult
from tui_helpers import wait_until

from noor_tui.app import AdminApp
from noor_tui.screens.usage import UsageScreen
from noor_tui.widgets.bar_chart import BarChart
from noor_tui.widgets.footer import KeyFooter


def admin_app(daemon, tmp_path) -> AdminApp:
    return AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path, live=False)


async def test_a_first_visit_restyles_nothing_twice_and_fetches_once(daemon, tmp_path, monkeypatch) -> None:
    app = admin_app(daemon, tmp_path)
    fetches: list[str] = []
    fetch = UsageScreen.fetch

    async def counted(screen):  # a slow daemon: the answer comes after the screen is shown
        fetches.append(screen.range)
        await asyncio.sleep(0.3)
        return await fetch(screen)

    monkeypatch.setattr(UsageScreen, "fetch", counted)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.screen.loaded, what="the overview")
        await pilot.pause(0.2)
        reparsed: list[bool] = []
        reparse = app.stylesheet.reparse
        monkeypatch.setattr(app.stylesheet, "reparse", lambda: (reparsed.append(True), reparse()))
        restyled = []
        update_styles = app.update_styles
        monkeypatch.setattr(app, "update_styles", lambda node, animate=True: (restyled.append(node), update_styles(node, animate)))

        await app.switch_mode("usage")
        screen = app.screen
        await wait_until(pilot, lambda: screen.loaded, what="the usage screen")
        await pilot.pause(0.2)

        assert reparsed == [], "Textual re-parsed and restyled the whole app for a new screen: see NoorApp.refresh_css"
        assert screen not in restyled, "the new screen was restyled whole as it was shown"
        assert fetches == ["day"], "the first visit should ask the daemon once (the early fetch), not once per resume"
        assert {"-wide", "-tall"} <= screen.classes and not {"-narrow", "-short"} & screen.classes

        await app.switch_mode("overview")
        await app.switch_mode("usage")
        await pilot.pause(0.1)
        assert screen in restyled, "a screen shown again is restyled (what changed while it was away)"
        assert reparsed == [], "nothing changed the CSS: showing a screen again needs no re-parse"


async def test_size_classes_are_set_before_mounting_as_textual_would(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("usage")
        screen = app.screen
        await wait_until(pilot, lambda: screen.loaded, what="the usage screen")
        assert {"-narrow", "-short"} <= screen.classes and not {"-wide", "-tall"} & screen.classes
        await pilot.resize_terminal(160, 48)
        await pilot.pause(0.1)
        assert {"-wide", "-tall"} <= screen.classes and not {"-narrow", "-short"} & screen.classes


async def test_the_footer_is_rebuilt_only_when_its_keys_change(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.switch_mode("usage")  # returns once the screen is mounted, before its first frame
        screen = app.screen
        footer = screen.query_one(KeyFooter)
        first_frame: list[int] = []
        screen.call_after_refresh(lambda: first_frame.append(len(footer.children)))
        await wait_until(pilot, lambda: first_frame, what="the first frame")
        assert first_frame[0], "the footer should come with its keys, not fill them in after the first frame"
        await wait_until(pilot, lambda: screen.loaded, what="the usage screen")
        keys = list(footer.children)
        assert any("Range" in str(key.render()) for key in keys)
        screen.refresh_bindings()  # nothing changed: the same key widgets stay
        await pilot.pause(0.1)
        assert list(footer.children) == keys


async def test_the_start_up_heap_is_frozen_while_the_dashboard_runs(daemon, tmp_path) -> None:
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.loaded, what="the overview")
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


class ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield BarChart()


async def test_the_bar_chart_draws_whole_lines_and_cuts_a_long_legend() -> None:
    app = ChartApp()
    async with app.run_test(size=(30, 10)) as pilot:
        chart = app.query_one(BarChart)
        names = {"a-very-long-model-name": [1, 2, 3], "another-long-one": [3, 2, 1]}
        chart.show(names, ["00:00", "", "02:00"])
        await pilot.pause()
        width, height = chart.size
        lines = [chart.render_line(y) for y in range(height)]
        assert all(line.cell_length == width for line in lines)
        legend = "".join(segment.text for segment in lines[0])
        assert legend.startswith("■ a-very-long-model") and legend.endswith("…")
        assert "00:00" in "".join(segment.text for segment in lines[-1])
        chart.show({}, [])
        await pilot.pause()
        assert chart.render_line(0).text.strip() == ""



async def test_a_screen_built_or_shown_after_a_theme_change_wears_the_new_theme(daemon, tmp_path) -> None:
    """The restyle skipped on a first visit is not needed: a new screen is styled with the theme of the moment."""
    app = admin_app(daemon, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.screen.loaded, what="the overview")
        dark = app.screen.styles.background
        app.action_toggle_theme()
        await pilot.pause(0.1)
        light = app.screen.styles.background
        assert light != dark

        await app.switch_mode("usage")  # built after the change
        usage = app.screen
        await wait_until(pilot, lambda: usage.loaded, what="the usage screen")
        assert usage.styles.background == light
        table = usage.query_one("#usage-table DataTable")
        assert table.styles.background == app.screen.query_one("#usage-table-box").styles.background

        await app.switch_mode("overview")
        app.action_toggle_theme()  # changed while the usage screen is away
        await pilot.pause(0.1)
        await app.switch_mode("usage")
        await pilot.pause(0.1)
        assert usage.styles.background == dark
