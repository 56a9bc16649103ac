"""The dashboard's billing screen with Stripe configured: each account's subscription state, and a
Checkout or portal link for the highlighted account (key l), through the admin API client."""

from __future__ import annotations

from datetime import UTC

import pytest
from billing_helpers import PRO_PRICE, billing_config, event, eventually, post_event, stripe  # noqa: F401 - fixture
from textual.widgets import DataTable
from tui_helpers import screen_text, table_text, wait_until

from noor_daemon.state import ACCOUNTS, BILLING
from noor_tui.app import AdminApp

pytestmark = pytest.mark.engine_independent

SIZE = (140, 36)


async def test_the_billing_screen_shows_stripe_state_and_gives_links(start_daemon, stripe, tmp_path) -> None:
    daemon = await start_daemon(billing_config(stripe))
    await daemon.create_key("free.one@example.com")
    await daemon.create_key("paying.one@example.com")
    paying = await daemon.app[ACCOUNTS].get_account("paying.one@example.com")
    row = await eventually(lambda: daemon.app[BILLING].customer_row(paying.id))
    await eventually(lambda: len(stripe.customers) == 2)
    sub = stripe.add_subscription(row["customer_id"], PRO_PRICE)
    await post_event(daemon.url, event("customer.subscription.created", sub))

    app = AdminApp(daemon.url, daemon.admin_token, tz=UTC, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("billing")
        screen = app.screen
        await wait_until(pilot, lambda: screen.loaded, what="billing to load")
        table = screen.query_one("#billing DataTable", DataTable)
        await wait_until(pilot, lambda: "active pro" in table_text(table), what="the subscription")
        assert "no subscription" in table_text(table)
        assert "Billing is configured" in screen_text(app)

        table.move_cursor(row=0)  # free.one (sorted by email): no subscription → Checkout for a paid plan
        await pilot.press("l")
        await wait_until(pilot, lambda: stripe.checkout_sessions, what="a Checkout session")
        (session,) = stripe.checkout_sessions.values()
        assert session["metadata"]["noor_plan"] == "pro"

        table.move_cursor(row=1)  # paying.one: subscribed → the portal
        await pilot.press("l")
        await wait_until(pilot, lambda: stripe.portal_sessions, what="a portal session")
        (portal,) = stripe.portal_sessions.values()
        assert portal["customer"] == row["customer_id"]
