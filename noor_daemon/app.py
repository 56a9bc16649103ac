"""The application factory: config, ledger, keys, upstreams and routes, wired once.

`noor daemon` and the tests both build the daemon with `create_app`, so what is tested
is what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from noor_daemon import __version__, paths, secret_store
from noor_daemon.admin import create_admin_app
from noor_daemon.config import Config
from noor_daemon.gateway import me
from noor_daemon.gateway import http1
from noor_daemon.gateway.auth import KeyRing
from noor_daemon.gateway.proxy import Proxy
from noor_daemon.gateway.routing import Router, health_check_loop
from noor_daemon.gateway.upstreams import build_upstreams, resolve_secrets
from noor_daemon.keys import (
    ACCOUNTS,
    ADMIN_TOKEN_HASH,
    AUDIT,
    HTTP_SESSION,
    KEYRING,
    LEDGER,
    LIMITER,
    PROXY,
    SETTINGS,
    UPSTREAM_POOL,
    DaemonSettings,
)
from noor_daemon.ledger.accounts import AccountStore
from noor_daemon.ledger.audit import AuditLog
from noor_daemon.ledger import ledger_for
from noor_daemon.limits.abuse import AuthFailures, SpikeDetector
from noor_daemon.limits.enforcer import Limiter
from noor_daemon.limits.periods import PeriodCounters
from noor_daemon.metrics import Metrics
from noor_daemon.reload import sighup_ctx
from noor_daemon.privacy.service import install_privacy
from noor_daemon.admin.live import install_live
from noor_daemon.billing.service import install_billing

log = logging.getLogger(__name__)


def create_app(settings: DaemonSettings) -> web.Application:
    config = settings.config.config
    paths.ensure_private_dir(settings.data_dir)  # refuses a world-writable data dir
    secret_store.use_backend(secret_store.open_backend(config.secrets, settings.data_dir))  # [secrets]: keyring or 0600 file
    secrets = resolve_secrets(config)

    ledger = ledger_for(config.storage, paths.database_file(settings.data_dir))  # SQLite, or [storage] url
    keyring = KeyRing()
    ledger.pending_key_touches = keyring.drain_touches
    audit = AuditLog(ledger, settings.clock)
    accounts = AccountStore(ledger, keyring, settings.clock, audit)
    counters = PeriodCounters(settings.clock)
    ledger.add_listener(counters.on_commit)
    limiter = Limiter(config, settings.clock, counters)
    accounts.on_account_deleted.append(limiter.forget_account)
    proxy = Proxy(
        config=config,
        keyring=keyring,
        ledger=ledger,
        clock=settings.clock,
        limiter=limiter,
        auth_failures=AuthFailures(config.abuse, settings.clock),
        spikes=SpikeDetector(config.abuse, settings.clock),
        report_abuse=audit.add_soon,
    )

    ledger.calls_in_flight = lambda: proxy.in_flight
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[me.me_errors])
    app[SETTINGS] = settings
    app[LEDGER] = ledger
    app[KEYRING] = keyring
    app[ACCOUNTS] = accounts
    app[AUDIT] = audit
    app[PROXY] = proxy
    app[LIMITER] = limiter
    app[ADMIN_TOKEN_HASH] = secret_store.AdminVerifier(
        settings.admin_token_hash or secret_store.token_digest(settings.admin_token), settings.admin_token_source, settings.data_dir
    )

    async def ledger_ctx(app: web.Application) -> AsyncIterator[None]:
        await ledger.open()
        await accounts.load()
        await counters.load(ledger)
        yield
        await audit.drain()
        await ledger.close()

    async def upstreams_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60)
        pool = app[UPSTREAM_POOL] = http1.Pool()  # proxied calls; the session serves the health probes
        async with aiohttp.ClientSession(connector=connector, auto_decompress=True) as session:
            app[HTTP_SESSION] = session
            proxy.router = Router(config, build_upstreams(config, secrets, session, pool), settings.clock)
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

    app.cleanup_ctx.append(ledger_ctx)
    app.cleanup_ctx.append(upstreams_ctx)
    app.cleanup_ctx.append(sighup_ctx)
    install_privacy(app)  # mail outbox, retention job, data-rights hooks, /v1/me export and deletion
    install_live(app)  # the dashboard's live feed and last hour in memory, /v1/me/usage
    install_billing(app)  # Stripe customers, meter outbox, webhooks, /v1/me/billing (off without [billing])
    app.add_routes(proxy.routes())
    app.add_routes(me.routes)
    metrics = Metrics(lambda: proxy.router.snapshot(), ledger)
    ledger.add_listener(metrics.on_commit)
    if config.limits.redis_url:  # limits shared by several daemons (redis is in the `scale` extra)
        from noor_daemon.limits.shared import install_shared_limits

        install_shared_limits(app, limiter, ledger, accounts, metrics.registry)
    app.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics.handler)])
    app.add_subapp("/admin/v1", create_admin_app())
    return app


def server_options(config: Config) -> dict:
    """Keyword arguments for aiohttp's server (AppRunner / run_app's handler_args)."""
    server = config.server
    return {
        "max_line_size": server.max_header_bytes,
        "max_field_size": server.max_header_bytes,
        "max_headers": server.max_headers,
    }


async def healthz(request: web.Request) -> web.Response:
    """200 while calls can be served and metered; 503 while the ledger cannot be written.

    A Redis fallback stays 200: every daemon still enforces every limit, alone.
    """
    settings = request.app[SETTINGS]
    healthy = request.app[LEDGER].healthy
    shared = request.app[LIMITER].shared
    return web.json_response(
        {
            "status": "ok" if healthy else "degraded",
            "ledger": "ok" if healthy else "unwritable",
            "storage": request.app[LEDGER].engine,  # sqlite, or postgresql (shared by several daemons)
            # local: this daemon's own counts; shared: in Redis; fallback: Redis configured but unusable
            "limits": "local" if shared is None else shared.link.mode,
            "version": __version__,
            "simulator_only": settings.config.path is None,
        },
        status=200 if healthy else 503,
    )
