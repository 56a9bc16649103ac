"""Hot reload: re-read the config on SIGHUP or `noor config reload`; a bad file changes nothing.

Everything new is built and checked first (TOML, schema, secrets, upstreams); only then are
the references swapped, between two requests, so a call sees either the old config or the
new one, never a mix. Route health carries over for routes that still exist.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from noor_daemon.config import Config, LoadedConfig, load
from noor_daemon.domain.money import PriceBook
from noor_daemon.gateway.routing import Router
from noor_daemon.gateway.upstreams import build_upstreams, resolve_secrets
from noor_daemon.ledger.audit import AuditEntry
from noor_daemon.state import AUDIT, HTTP_SESSION, LIMITER, PRIVACY, PROXY, SETTINGS, UPSTREAM_POOL
from noor_daemon.telemetry import TELEMETRY

log = logging.getLogger(__name__)

RELOADED_SERVER_SETTINGS = ("client_write_timeout", "trust_env")
"""The `[server]` settings a reload applies; the others (address, TLS, limits of the HTTP layer…) are the listening
socket's and the HTTP server's, made once at start."""
RESTART_ONLY_SECTIONS = ("storage", "limits", "secrets", "billing", "telemetry")
"""Sections whose services are built once at start (the ledger's engine, Redis, the secrets backend, Stripe, the
OpenTelemetry exporters)."""


def restart_only_changes(running: Config, new: Config) -> tuple[Config, list[str]]:
    """`new` with every setting only a restart can apply kept as it runs, and one warning per such setting whose
    value in the file differs from the running one (so an unchanged file, or one changed back, warns of nothing)."""
    warnings = []
    server = running.server.model_copy(update={name: getattr(new.server, name) for name in RELOADED_SERVER_SETTINGS})
    for name in type(running.server).model_fields:
        if name not in RELOADED_SERVER_SETTINGS and getattr(running.server, name) != getattr(new.server, name):
            warnings.append(f"[server] {name} changed; it takes effect at the next restart")
    kept = {"server": server}
    for section in RESTART_ONLY_SECTIONS:
        if section not in type(running).model_fields:
            continue
        was, now = getattr(running, section), getattr(new, section)
        kept[section] = was
        if was == now:
            continue
        if was is None or now is None:
            warnings.append(f"[{section}] {'added' if was is None else 'removed'}; it takes effect at the next restart")
            continue
        for name in type(was).model_fields:
            if getattr(was, name) != getattr(now, name):
                warnings.append(f"[{section}] {name} changed; it takes effect at the next restart")
    return new.model_copy(update=kept), warnings


async def reload_config(app: Mapping, *, actor: str = "admin") -> list[str]:
    """Swap in the config file's current content. Returns warnings; raises ConfigError/SecretError.

    `app` is the application or a request's `config_dict`: anything that maps the AppKeys.
    """
    settings = app[SETTINGS]
    old = settings.config
    new: LoadedConfig = load(old.path) if old.path else load()
    secrets = resolve_secrets(new.config)
    apply_privacy = app[PRIVACY].prepare_reload(new.config)  # [smtp] and its password checked now
    proxy = app[PROXY]
    upstreams = build_upstreams(new.config, secrets, app[HTTP_SESSION], app[UPSTREAM_POOL])
    router = Router(new.config, upstreams, settings.clock, health=proxy.router.health)
    telemetry = app.get(TELEMETRY)
    if telemetry is not None:  # the new router and upstreams traced like the first ones
        telemetry.instrument_routing(router, upstreams, new.config)
    config, warnings = restart_only_changes(old.config, new.config)
    settings.config = LoadedConfig(config, new.path)
    proxy.config = config
    proxy.prices = PriceBook(config)
    proxy.router = router
    proxy.auth_failures.config = config.abuse
    proxy.spikes.config = config.abuse
    app[LIMITER].config = config
    apply_privacy()  # mail delivery, retention limit
    await app[AUDIT].add(
        AuditEntry("config.reloaded", actor, "config", str(new.path) if new.path else None, details={"warnings": warnings} if warnings else None)
    )
    log.info("config reloaded from %s", new.path or "built-in defaults")
    return warnings


async def sighup_ctx(app: web.Application) -> AsyncIterator[None]:
    """Reload on SIGHUP, for `noor daemon` (tests build daemons without signal handlers)."""
    if not app[SETTINGS].handle_signals:
        yield
        return
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task] = set()

    async def reload_logged() -> None:
        try:
            for warning in await reload_config(app, actor="signal"):
                log.warning(warning)
        except Exception as exc:  # a bad file is reported and the old config keeps serving
            log.error("config reload refused; the previous config keeps serving:\n%s", exc)

    def on_sighup() -> None:
        task = loop.create_task(reload_logged())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    yield
    loop.remove_signal_handler(signal.SIGHUP)
