"""The application factory: every service and every route of the daemon, assembled in one declared order.

`noor daemon`, `noor demo` and the tests all build the daemon with `create_app`, so what is
tested is what runs. Read it top to bottom: the services, each handed what it needs (lower
layers never reach into the app); how they hear of each other (ledger commits, account
changes); what starts in which order; then the route tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from noor_daemon import __version__, paths, secret_store, selfservice, state
from noor_daemon.admin import create_admin_app
from noor_daemon.billing import routes as billing_routes
from noor_daemon.billing.alerts import BudgetAlerts
from noor_daemon.billing.service import BillingService, stripe_secrets
from noor_daemon.config import Config
from noor_daemon.domain.accounts import Account, KeyRing
from noor_daemon.domain.errors import GatewayError
from noor_daemon.gateway import http1
from noor_daemon.gateway.proxy import Proxy
from noor_daemon.gateway.routing import Router, health_check_loop
from noor_daemon.gateway.upstreams import build_upstreams, resolve_secrets
from noor_daemon.gateway.wire import WIRES
from noor_daemon.ledger import ledger_for
from noor_daemon.ledger.accounts import AccountStore
from noor_daemon.ledger.audit import AuditLog
from noor_daemon.limits.abuse import AuthFailures, SpikeDetector
from noor_daemon.limits.enforcer import Limiter
from noor_daemon.limits.periods import PeriodCounters
from noor_daemon.limits.report import quota_report
from noor_daemon.mail.outbox import Outbox
from noor_daemon.metrics import Metrics
from noor_daemon.privacy.service import PrivacyService, build_sender
from noor_daemon.reload import sighup_ctx
from noor_daemon.settings import DaemonSettings
from noor_daemon.telemetry import TELEMETRY, start_telemetry
from noor_daemon.views.live import EventFeed, LiveState, MetricsWindow, live_context
from noor_daemon.views.minutes import MinuteUsage

log = logging.getLogger(__name__)


def create_app(settings: DaemonSettings) -> web.Application:
    config = settings.config.config
    clock = settings.clock
    paths.ensure_private_dir(settings.data_dir)  # refuses a world-writable data dir
    secret_store.use_backend(secret_store.open_backend(config.secrets, settings.data_dir))  # [secrets]: keyring or 0600 file
    # Every secret is resolved now, so a missing one stops the start with its name, not a later call.
    upstream_secrets = resolve_secrets(config)
    telemetry = start_telemetry(config)  # [telemetry]: OpenTelemetry, or None (then nothing below is wrapped)
    mail_sender, from_address = build_sender(config, settings.data_dir)  # SMTP, or the local Maildir
    stripe_key, webhook_secret = stripe_secrets(config)

    # -- the services, bottom-up -------------------------------------------------------------
    ledger = ledger_for(config.storage, paths.database_file(settings.data_dir))  # SQLite, or [storage] url
    keyring = KeyRing()
    audit = AuditLog(ledger, clock)
    accounts = AccountStore(ledger, keyring, clock, audit)
    counters = PeriodCounters(clock)
    limiter = Limiter(config, clock, counters)
    proxy = Proxy(
        config=config,
        keyring=keyring,
        ledger=ledger,
        clock=clock,
        limiter=limiter,
        auth_failures=AuthFailures(config.abuse, clock),
        spikes=SpikeDetector(config.abuse, clock),
        report_abuse=audit.add_soon,
    )
    outbox = Outbox(ledger, clock, mail_sender, from_address, audit)
    privacy = PrivacyService(
        config=config, ledger=ledger, keyring=keyring, accounts=accounts, audit=audit, clock=clock, outbox=outbox,
        data_dir=settings.data_dir,
    )
    live = LiveState(EventFeed(keyring), MetricsWindow(clock), MinuteUsage(clock))
    billing = BillingService(
        settings=settings, ledger=ledger, accounts=accounts, keyring=keyring, audit=audit, clock=clock, outbox=outbox,
        secret_key=stripe_key, webhook_secret=webhook_secret,
    )
    pool = http1.Pool()  # proxied calls' connections; the session of upstreams_ctx serves the health probes
    metrics_token = secret_store.resolve(config.server.metrics_token, what="[server] metrics_token")
    metrics = Metrics(
        lambda: proxy.router.snapshot(), ledger, pool.stats, server=lambda: settings.config.config.server, token=metrics_token
    )

    # -- how they hear of each other ---------------------------------------------------------
    ledger.pending_key_touches = keyring.drain_touches  # keys' last use, written with each batch
    ledger.calls_in_flight = lambda: proxy.in_flight  # the writer batches more when many calls wait
    ledger.add_listener(counters.on_commit, immediate=True)  # day/month quotas and budgets count each call at once
    accounts.on_account_deleted.append(limiter.forget_account)
    privacy.hook_into(accounts)  # creation, correction and erasure do the whole data-rights job

    async def quota_section(account: Account) -> Any:
        return await quota_report(limiter, accounts, keyring.accounts.get(account.id, account), int(clock.now() * 1000))

    privacy.export_sections["quota"] = quota_section
    ledger.add_listener(live.on_commit)  # the dashboard's live feed and last hour
    accounts.on_account_deleted.append(live.forget_account)
    if billing.configured:
        assert billing.meter is not None
        billing.hook_into(accounts)  # Stripe customers follow accounts
        ledger.add_listener(billing.meter.on_commit)  # late calls of a metered hour are reported too
        privacy.export_sections["billing"] = billing.export_section  # a data export names the Stripe ids
    ledger.add_listener(metrics.on_commit)  # /metrics counts committed calls
    alerts = BudgetAlerts(
        config=lambda: settings.config.config, ledger=ledger, keyring=keyring, limiter=limiter, outbox=outbox, audit=audit,
        clock=clock, webhook_secret=secret_store.resolve(config.budgets.webhook_secret, what="[budgets] webhook_secret"),
    )
    ledger.add_listener(alerts.on_commit)  # budgets crossing 50/80/100 % are mailed (and posted) once
    limiter.budget_refusals.append(alerts.on_refused)  # a budget refusing calls is its 100 %

    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[state.SETTINGS] = settings
    app[state.LEDGER] = ledger
    app[state.KEYRING] = keyring
    app[state.ACCOUNTS] = accounts
    app[state.AUDIT] = audit
    app[state.PROXY] = proxy
    app[state.LIMITER] = limiter
    app[state.OUTBOX] = outbox
    app[state.PRIVACY] = privacy
    app[state.LIVE] = live
    app[state.BILLING] = billing
    app[state.BUDGET_ALERTS] = alerts
    app[state.ADMIN_TOKEN_HASH] = secret_store.AdminVerifier(
        settings.admin_token_hash or secret_store.token_digest(settings.admin_token), settings.admin_token_source, settings.data_dir
    )

    # -- start-up order (cleanup_ctx: set up in this order, torn down in reverse) ------------
    async def ledger_ctx(app: web.Application) -> AsyncIterator[None]:
        await ledger.open()
        await accounts.load()
        await counters.load(ledger)
        yield
        await audit.drain()
        await ledger.close()

    async def upstreams_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60)
        app[state.UPSTREAM_POOL] = pool
        async with aiohttp.ClientSession(connector=connector, auto_decompress=True) as session:
            app[state.HTTP_SESSION] = session
            upstreams = build_upstreams(config, upstream_secrets, session, pool)
            proxy.router = Router(config, upstreams, clock)
            if telemetry is not None:
                telemetry.instrument_routing(proxy.router, upstreams, config)
            checks = None
            if config.routing.health_check_interval:
                checks = asyncio.create_task(
                    health_check_loop(lambda: proxy.router, config.routing.health_check_interval), name="health-checks"
                )
            yield
            if checks is not None:
                checks.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await checks
            pool.close()

    async def close_event_streams(app: web.Application) -> None:
        live.feed.close_all()  # before the server waits for its handlers

    app.cleanup_ctx.append(ledger_ctx)
    app.cleanup_ctx.append(upstreams_ctx)
    app.cleanup_ctx.append(sighup_ctx)  # `noor daemon` only: SIGHUP reloads the config
    app.cleanup_ctx.append(privacy.ctx)  # mail sender, retention job
    app.cleanup_ctx.append(live_context(live, ledger, clock, lambda: settings.config.config))
    app.cleanup_ctx.append(billing.ctx)  # the Stripe pass (idle without [billing])
    app.cleanup_ctx.append(alerts.ctx)  # budget alerts: mails and the signed webhook
    app.on_shutdown.append(close_event_streams)
    if config.limits.redis_url:  # limits shared by several daemons; redis is the optional `scale` extra
        from noor_daemon.limits.shared import install_shared_limits

        shared = install_shared_limits(limiter, ledger, accounts, metrics.registry)
        app.cleanup_ctx.append(shared.ctx)
    if telemetry is not None:  # spans around the proxy's steps and GenAI metrics from committed calls
        telemetry.instrument(proxy, limiter)
        ledger.add_listener(telemetry.on_commit)
        app[TELEMETRY] = telemetry
        app.cleanup_ctx.append(telemetry.ctx)

    # -- routes ------------------------------------------------------------------------------
    app.add_routes(proxy.routes())  # /v1: the OpenAI- and Anthropic-compatible API
    app.add_routes(selfservice.routes())  # /v1/me: a key holder's own account
    app.add_routes(billing_routes.routes(billing))  # Stripe's webhook, the pages Checkout returns to
    app.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics.handler)])
    app.add_subapp("/admin/v1", create_admin_app())  # loopback and the admin token only
    app.router.add_route("*", "/{path:.*}", unmatched)  # last: reached only by what no route above took
    state.check_complete(app)
    return app


def server_options(config: Config) -> dict:
    """Keyword arguments for aiohttp's server (AppRunner / run_app's handler_args)."""
    server = config.server
    return {
        "max_line_size": server.max_header_bytes,
        "max_field_size": server.max_header_bytes,
        "max_headers": server.max_headers,
    }


async def unmatched(request: web.Request) -> web.Response:
    """An unknown path (404) or a method its path does not take (405), in the caller's API's error shape.

    aiohttp's own answers are text/plain, which the SDKs cannot read as their error classes. This route
    is the router's last resort (it is looked up only after every more specific one), so it costs the
    served paths nothing; the path itself is never echoed.
    """
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    wire = WIRES["messages"] if "anthropic-version" in request.headers else WIRES["chat/completions"]
    if allowed:
        methods = ", ".join(sorted(allowed))
        error = GatewayError(405, "invalid_request", f"This endpoint does not take this method; it takes {methods}.",
                             code="method_not_allowed", headers={"Allow": methods})
    else:
        error = GatewayError(404, "not_found", "No such endpoint. The gateway serves the OpenAI and Anthropic APIs under /v1 "
                             "(chat/completions, completions, embeddings, responses, models, messages).", code="unknown_url")
    return wire.error_response(error)


async def healthz(request: web.Request) -> web.Response:
    """200 while calls can be served and metered; 503 while the ledger cannot be written.

    A Redis fallback stays 200: every daemon still enforces every limit, alone.
    """
    settings = request.app[state.SETTINGS]
    ledger = request.app[state.LEDGER]
    shared = request.app[state.LIMITER].shared
    return web.json_response(
        {
            "status": "ok" if ledger.healthy else "degraded",
            "ledger": "ok" if ledger.healthy else "unwritable",
            "storage": ledger.engine,  # sqlite, or postgresql (shared by several daemons)
            # local: this daemon's own counts; shared: in Redis; fallback: Redis configured but unusable
            "limits": "local" if shared is None else shared.link.mode,
            "version": __version__,
            "simulator_only": settings.config.config.simulator_only,  # the config in force, reloads included
        },
        status=200 if ledger.healthy else 503,
    )
