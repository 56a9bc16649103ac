"""Temporary: cost of Textual's refresh_css on first visits (not committed)."""
import time, os
from datetime import UTC
from noor_tui.app import AdminApp
from noor_tui.screens.base import NoorScreen
from tui_helpers import wait_until

async def test_measure(daemon, tmp_path, monkeypatch):
    if os.environ.get("NOSKIP"):
        monkeypatch.setattr(NoorScreen, "_skip_first_restyle", lambda self: None)
    app = AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path, live=False)
    spent = []
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.screen.loaded, what="overview")
        await pilot.pause(0.5)
        orig = app.refresh_css
        def timed(animate=True):
            t = time.perf_counter(); orig(animate); spent.append((time.perf_counter() - t) * 1000)
        monkeypatch.setattr(app, "refresh_css", timed)
        out = []
        for mode in ["usage", "quotas", "keys", "accounts", "privacy", "billing"]:
            spent.clear()
            t = time.perf_counter()
            await app.switch_mode(mode)
            s = app.screen
            await wait_until(pilot, lambda: s.loaded, what=mode)
            await pilot.pause(0)
            out.append((mode, round((time.perf_counter() - t) * 1000, 1), [round(x, 1) for x in spent], len(app.walk_children())))
            await pilot.pause(0.3)
        print("\nRESULT", "noskip" if os.environ.get("NOSKIP") else "skip")
        for o in out: print(o)
