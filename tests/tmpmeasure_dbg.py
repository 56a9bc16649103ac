from datetime import UTC
from noor_tui.app import AdminApp
from tui_helpers import wait_until

async def test_dbg(daemon, tmp_path, monkeypatch):
    app = AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path, live=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.screen.loaded, what="overview")
        await pilot.pause(0.5)
        for mode in ["usage", "quotas"]:
            old = app._css_styled_with
            v = app.get_css_variables(); src = dict(app.stylesheet.source)
            print("\nBEFORE", mode, "vars same", v == old[0], "src same", src == old[1], "ansi", app.ansi_theme is old[2])
            print(set(src) ^ set(old[1]))
            print([k for k in src if k in old[1] and src[k] != old[1][k]])
            await app.switch_mode(mode); await pilot.pause(0.3)
