"""The app's shared services, each under one typed `web.AppKey`.

`app.py` builds every service and stores it here in one declared order; the admin API and the
/v1/me handlers read them from the request's app. Lower layers never read the app: they are
handed what they need when they are built.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from noor_daemon.billing.alerts import BudgetAlerts
from noor_daemon.billing.service import BillingService
from noor_daemon.domain.accounts import KeyRing
from noor_daemon.gateway.http1 import Pool
from noor_daemon.gateway.proxy import Proxy
from noor_daemon.ledger.accounts import AccountStore
from noor_daemon.ledger.audit import AuditLog
from noor_daemon.ledger.database import Ledger
from noor_daemon.limits.enforcer import Limiter
from noor_daemon.mail.outbox import Outbox
from noor_daemon.privacy.service import PrivacyService
from noor_daemon.secret_store import AdminVerifier
from noor_daemon.settings import DaemonSettings
from noor_daemon.views.live import LiveState

SETTINGS = web.AppKey("settings", DaemonSettings)
LEDGER = web.AppKey("ledger", Ledger)
KEYRING = web.AppKey("keyring", KeyRing)
ACCOUNTS = web.AppKey("accounts", AccountStore)
AUDIT = web.AppKey("audit", AuditLog)
PROXY = web.AppKey("proxy", Proxy)
LIMITER = web.AppKey("limiter", Limiter)
OUTBOX = web.AppKey("outbox", Outbox)
PRIVACY = web.AppKey("privacy", PrivacyService)
BILLING = web.AppKey("billing", BillingService)
BUDGET_ALERTS = web.AppKey("budget_alerts", BudgetAlerts)
LIVE = web.AppKey("live", LiveState)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
"""The one ClientSession the upstreams' health probes share."""
UPSTREAM_POOL = web.AppKey("upstream_pool", Pool)
"""The keep-alive connections every proxied call goes out on, per upstream origin."""
ADMIN_TOKEN_HASH = web.AppKey("admin_token_hash", AdminVerifier)
"""The admin token's SHA-256 (rotatable): the daemon keeps no plaintext copy to compare against."""

REQUIRED = (SETTINGS, LEDGER, KEYRING, ACCOUNTS, AUDIT, PROXY, LIMITER, OUTBOX, PRIVACY, BILLING, BUDGET_ALERTS, LIVE, ADMIN_TOKEN_HASH)
"""What every handler may rely on once `create_app` returns (the upstream keys arrive at startup)."""


def check_complete(app: web.Application) -> None:
    """Fail at start, naming what is missing, rather than with a KeyError in some handler later."""
    missing = [key.name for key in REQUIRED if key not in app]
    if missing:
        raise RuntimeError(f"the app was assembled without: {', '.join(missing)} (see noor_daemon/app.py)")
