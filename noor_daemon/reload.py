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

from noor_daemon.config import LoadedConfig, load
from noor_daemon.domain.money import PriceBook
from noor_daemon.gateway.routing import Router
from noor_daemon.gateway.upstreams import build_upstreams, resolve_secrets
from noor_daemon.ledger.audit import AuditEntry
from noor_daemon.state import AUDIT, HTTP_SESSION, LIMITER, PRIVACY, PROXY, SETTINGS, UPSTREAM_POOL

log = logging.getLogger(__name__)

RESTART_ONLY = (
    "host", "port", "max_body_bytes", "tls_cert", "tls_key", "admin_remote", "metrics_remote", "metrics_token", "shutdown_timeout",
)


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
    router = Router(
        new.config, build_upstreams(new.config, secrets, app[HTTP_SESSION], app[UPSTREAM_POOL]), settings.clock, health=proxy.router.health
    )
    warnings = [
        f"[server] {name} changed; it takes effect at the next restart"
        for name in RESTART_ONLY
        if getattr(old.config.server, name) != getattr(new.config.server, name)
    ]
    if old.config.billing != new.config.billing:
        warnings.append("[billing] changed; it takes effect at the next restart")
    if old.config.secrets != new.config.secrets:
        warnings.append("[secrets] changed; the secrets backend changes at the next restart")
    if (old.config.limits.redis_url, old.config.limits.redis_prefix) != (new.config.limits.redis_url, new.config.limits.redis_prefix):
        warnings.append("[limits] redis_url or redis_prefix changed; it takes effect at the next restart")
    config = new.config.model_copy(update={"server": old.config.server, "secrets": old.config.secrets})
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
