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

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Tabs
from tui_helpers import built_modes, wait_until

from noor_tui.app import AdminApp
from noor_tui.screens.usage import UsageScreen
from noor_tui.widgets.bar_chart import BarChart
from noor_tui.widgets.footer import KeyFooter

pytestmark = pytest.mark.engine_independent


def admin_app(daemon, tmp_path, *, prepare: bool = False) -> AdminApp:
    """Screens built on demand unless `prepare`: most of these tests are about a first visit that builds its screen."""
    return AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path, live=False, prepare=prepare)


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
        assert screen not in restyled, "nothing its styles depend on changed while it was away: no restyle to show it again"
        assert reparsed == [], "nothing changed the CSS: showing a screen again needs no re-parse"


async def test_screens_are_built_while_idle_and_their_first_visit_only_shows_them(daemon, tmp_path, monkeypatch) -> None:
    """Issue #21: a first visit within 100 ms. The other screens are built out of sight once the first has its data,
    with their data; the screen shown is passed over (not restyled, not shown again), and a screen built
    before a theme change wears the new theme when it is shown."""
    app = admin_app(daemon, tmp_path, prepare=True)
    fetches: list[str] = []
    fetch = UsageScreen.fetch

    async def counted(screen):
        fetches.append(screen.range)
        return await fetch(screen)

    monkeypatch.setattr(UsageScreen, "fetch", counted)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.screen.loaded, what="the overview")
        overview = app.screen
        restyled = []
        update_styles = app.update_styles
        monkeypatch.setattr(app, "update_styles", lambda node, animate=True: (restyled.append(node), update_styles(node, animate)))
        await wait_until(pilot, lambda: len(built_modes(app)) == len(app.NAV), what="every screen built")
        screens = {mode: app.get_screen_stack(mode)[0] for mode, _ in app.NAV}
        await wait_until(pilot, lambda: all(screen.loaded for screen in screens.values()), what="every screen's data")
        assert app.current_mode == "overview" and app.screen is overview
        assert overview not in restyled, "passing over the screen shown restyled it"
        assert fetches == ["day"], "a screen built out of sight asks the daemon once, and does not poll"

        usage = screens["usage"]
        shown = usage.polls
        await app.switch_mode("usage")
        assert app.screen is usage and usage.loaded and usage.query_one("#usage-table")
        await pilot.pause(0.2)
        assert usage.polls >= shown, "the visit shows the data it has, then polls as a screen shown again does"

        await app.switch_mode("overview")
        dark = overview.styles.background
        app.action_toggle_theme()
        await pilot.pause(0.1)
        assert overview.styles.background != dark
        keys = screens["keys"]  # built before the change, never shown
        await app.switch_mode("keys")
        await pilot.pause(0.1)
        assert keys.styles.background == overview.styles.background


async def test_a_key_pressed_while_its_screen_is_being_built_waits_for_it(daemon, tmp_path, monkeypatch) -> None:
    app = admin_app(daemon, tmp_path, prepare=True)
    pressed: list[tuple[bool, bool]] = []
    waiting: list[asyncio.Task] = []
    compose_body = UsageScreen.compose_body

    def composing(screen):  # the number comes in as the usage screen is being composed out of sight
        if not waiting:
            shown = app.switch_mode("usage")

            async def press() -> None:
                mounted = screen.is_mounted
                await shown
                pressed.append((mounted, screen.is_mounted and bool(screen.query("#usage-table"))))

            waiting.append(asyncio.ensure_future(press()))
        yield from compose_body(screen)

    monkeypatch.setattr(UsageScreen, "compose_body", composing)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: pressed, what="the number pressed for the usage screen")
        assert pressed == [(False, True)], "awaiting the switch returns once the screen is composed"
        screen = app.screen
        assert isinstance(screen, UsageScreen)
        await wait_until(pilot, lambda: screen.loaded, what="the usage screen's data")
        await wait_until(pilot, lambda: len(built_modes(app)) == len(app.NAV), what="the others built after it")
        assert app.screen is screen


async def test_a_fetch_that_failed_out_of_sight_is_asked_again_when_the_screen_is_shown(daemon, tmp_path, monkeypatch) -> None:
    """Nothing is said of a failure the user never saw: the visit fetches again, and says what is wrong then."""
    fetched: list[bool] = []
    fetch = UsageScreen.fetch

    async def flaky(screen):
        fetched.append(screen.is_current)
        if len(fetched) == 1:
            raise RuntimeError("boom")
        return await fetch(screen)

    monkeypatch.setattr(UsageScreen, "fetch", flaky)
    app = admin_app(daemon, tmp_path, prepare=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: len(built_modes(app)) == len(app.NAV), what="every screen built")
        usage = app.get_screen_stack("usage")[0]
        await pilot.pause(0.3)
        assert fetched == [False] and not usage.loaded
        await app.switch_mode("usage")
        await wait_until(pilot, lambda: usage.loaded, what="the usage screen's data")
        assert fetched == [False, True]
        assert not [n for n in app._notifications if "RuntimeError" in n.message]


async def test_quitting_restyles_no_focused_widget(daemon, tmp_path, monkeypatch) -> None:
    """Issue #21: `q` within 300 ms. Textual hands the focus of each screen it removes on, restyling the widget
    that had it (a table: costly) once per screen; the dashboard clears the focus first."""
    app = admin_app(daemon, tmp_path, prepare=True)
    restyled: list[set] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: len(built_modes(app)) == len(app.NAV), what="every screen built")
        screens = [app.get_screen_stack(mode)[0] for mode, _ in app.NAV]
        await wait_until(pilot, lambda: all(screen.is_mounted for screen in screens), what="every screen mounted")
        focused = {screen.focused for screen in screens} - {None}
        assert focused, "the screens' tables have the focus"
        update_nodes = app.stylesheet.update_nodes
        monkeypatch.setattr(
            app.stylesheet, "update_nodes", lambda nodes, animate=False: (restyled.append(set(nodes)), update_nodes(nodes, animate))
        )
        await pilot.press("q")
    assert not [nodes for nodes in restyled if nodes & focused]


def composing_tabs(monkeypatch) -> asyncio.Event:
    """Set while a `Tabs` (the Privacy screen's) is being composed, its own mount handler still to come."""
    composing = asyncio.Event()
    compose = Tabs.compose

    def observed(tabs):
        composing.set()
        yield from compose(tabs)

    monkeypatch.setattr(Tabs, "compose", observed)
    return composing


async def test_quitting_while_a_screen_is_built_out_of_sight_waits_for_it(daemon, tmp_path, monkeypatch) -> None:
    """Textual tears a half-mounted widget down under its pending mount handler: the Privacy screen's tabs
    raised "No Tab with id '--content-tab-requests'" when the dashboard closed as it was built (once in CI)."""
    composing = composing_tabs(monkeypatch)
    app = admin_app(daemon, tmp_path, prepare=True)
    async with app.run_test(size=(160, 48)):
        await composing.wait()
        privacy = app.get_screen_stack("privacy")[0]
        app.exit()  # what `q` does
        async with asyncio.timeout(5):
            while app.is_running:
                await asyncio.sleep(0.01)
        assert privacy.is_mounted, "the screen being built was finished before the dashboard closed"
    assert app.return_code == 0  # and run_test raised no error of the app's


async def test_a_test_ending_while_a_screen_is_built_out_of_sight_waits_for_it(daemon, tmp_path, monkeypatch) -> None:
    composing = composing_tabs(monkeypatch)
    app = admin_app(daemon, tmp_path, prepare=True)
    async with app.run_test(size=(160, 48)):
        await composing.wait()  # the context ends here: Textual's teardown, not `exit`
        privacy = app.get_screen_stack("privacy")[0]
    assert privacy.is_mounted  # and run_test raised no error of the app's


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

        await app.switch_mode("overview")  # resized while away: Textual resizes only the screen shown
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        await app.switch_mode("usage")
        await pilot.pause(0.1)
        assert {"-narrow", "-short"} <= screen.classes and not {"-wide", "-tall"} & screen.classes
        assert screen.query_one("#usage-table DataTable").size.width < 80


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
