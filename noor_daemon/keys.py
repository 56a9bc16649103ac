"""Typed application state: every shared object of the daemon, under one `web.AppKey` each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from noor_daemon.clock import Clock
from noor_daemon.config import LoadedConfig
from noor_daemon.gateway.auth import KeyRing
from noor_daemon.gateway.http1 import Pool
from noor_daemon.gateway.proxy import Proxy
from noor_daemon.ledger.accounts import AccountStore
from noor_daemon.ledger.audit import AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.limits.enforcer import Limiter
from noor_daemon.secret_store import AdminVerifier


@dataclass
class DaemonSettings:
    """What `noor daemon` and the tests decide before the app is built."""

    config: LoadedConfig
    data_dir: Path
    admin_token: str
    admin_token_source: str = "given"
    clock: Clock = field(default_factory=Clock)
    handle_signals: bool = False
    """`noor daemon` sets this: SIGHUP reloads the config. Off for in-process test daemons."""
    admin_token_hash: bytes | None = None
    """SHA-256 of the admin token when only the hash is known (after a rotation); `admin_token` is then ""."""


SETTINGS = web.AppKey("settings", DaemonSettings)
LEDGER = web.AppKey("ledger", Ledger)
KEYRING = web.AppKey("keyring", KeyRing)
ACCOUNTS = web.AppKey("accounts", AccountStore)
AUDIT = web.AppKey("audit", AuditLog)
PROXY = web.AppKey("proxy", Proxy)
LIMITER = web.AppKey("limiter", Limiter)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
"""The one ClientSession the upstreams' health probes share."""
UPSTREAM_POOL = web.AppKey("upstream_pool", Pool)
"""The keep-alive connections every proxied call goes out on, per upstream origin."""
ADMIN_TOKEN_HASH = web.AppKey("admin_token_hash", AdminVerifier)
"""The admin token's SHA-256 (rotatable): the daemon keeps no plaintext copy to compare against."""
