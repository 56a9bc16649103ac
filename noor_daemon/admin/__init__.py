"""The admin API under /admin/v1: JSON, one error shape, loopback only by default."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin import (
    accounts,
    api_keys,
    audit,
    billing,
    config,
    doctor,
    events,
    exports,
    limits,
    mail,
    openapi,
    overview,
    privacy,
    routes,
    security,
    series,
    spend,
    usage,
)
from noor_daemon.admin.middleware import admin_auth, admin_errors


def create_admin_app() -> web.Application:
    app = web.Application(middlewares=[admin_errors, admin_auth])
    for table in (
        accounts.routes,
        config.routes,
        doctor.routes,
        api_keys.routes,
        exports.routes,
        limits.routes,
        routes.routes,
        usage.routes,
        openapi.routes,
    ):
        app.add_routes(table)
    for table in (audit.routes, mail.routes, privacy.routes):  # data rights, audit log, mail outbox
        app.add_routes(table)
    for table in (events.routes, overview.routes, series.routes):  # the dashboard: live feed, charts, usage series
        app.add_routes(table)
    app.add_routes(billing.routes)  # Stripe: state, per-account billing, Checkout and portal links
    app.add_routes(spend.routes)  # money: spend per account, key or model next to the budgets; the prices in force
    app.add_routes(security.routes)  # admin token rotation, revocation by key prefix
    return app
