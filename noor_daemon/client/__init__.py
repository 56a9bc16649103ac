"""A typed async client of the daemon's HTTP APIs, shared by the CLI and the dashboard.

`AdminClient` speaks the admin API (/admin/v1) with the admin token, `MeClient` the
self-service API (/v1/me) with a key holder's API key. The package imports nothing else from
noor_daemon, so the dashboard can use it without pulling in the daemon, and the CLI stays an
HTTP client like any other.

    http.py       the shared session, the two exceptions, URL path segments
    admin.py      AdminClient          me.py      MeClient
    sse.py        the live feed's event stream reader
    export.py     exports streamed into a private (0600) file
    models.py     accounts, keys, usage totals, health, export results, the /v1/me view
    dashboard.py  live feed, overview, upstreams, usage series, quotas, catalog
    privacy.py    erasures, privacy requests, retention, policy versions, audit log
    billing.py    an account's billing, Stripe links
    money.py      spend per account, key or model; the price of each model
    doctor.py     the daemon's own doctor report

Every name below is public and stays importable from `noor_daemon.client`.
"""

from __future__ import annotations

from .admin import ADMIN_PREFIX, AdminClient
from .billing import AccountBilling, BillingLink
from .dashboard import (
    CallEvent,
    Catalog,
    FeedGap,
    KeyQuota,
    LimitStatus,
    MetricsSummary,
    Overview,
    ProviderHealth,
    QuotaReport,
    RouteStatus,
    SeriesTotals,
    Upstreams,
    UsageLine,
    UsageSeries,
)
from .doctor import DoctorReport
from .export import EXPORT_EVENTS_HEADER, ExportFormat, ExportProgress
from .http import DEFAULT_URL, AdminApiError, DaemonUnreachable, InsecureUrl
from .me import MeClient
from .models import (
    Account,
    ExportResult,
    Health,
    IssuedKey,
    KeyInfo,
    MeInfo,
    ModelUsage,
    UsageSummary,
    UsageTotals,
)
from .money import ModelPrice, Prices, Spend, SpendLine
from .privacy import (
    AuditEntry,
    AuditPage,
    Erasure,
    PolicyOverview,
    PolicyVersion,
    PrivacyRequest,
    PrivacyRequestPage,
    RetentionReport,
    RetentionStatus,
)

__all__ = [
    "ADMIN_PREFIX",
    "DEFAULT_URL",
    "EXPORT_EVENTS_HEADER",
    "Account",
    "AccountBilling",
    "AdminApiError",
    "AdminClient",
    "AuditEntry",
    "AuditPage",
    "BillingLink",
    "CallEvent",
    "Catalog",
    "DaemonUnreachable",
    "InsecureUrl",
    "DoctorReport",
    "Erasure",
    "ExportFormat",
    "ExportProgress",
    "ExportResult",
    "FeedGap",
    "Health",
    "IssuedKey",
    "KeyInfo",
    "KeyQuota",
    "LimitStatus",
    "MeClient",
    "MeInfo",
    "MetricsSummary",
    "ModelPrice",
    "ModelUsage",
    "Overview",
    "PolicyOverview",
    "PolicyVersion",
    "Prices",
    "PrivacyRequest",
    "PrivacyRequestPage",
    "ProviderHealth",
    "QuotaReport",
    "RetentionReport",
    "RetentionStatus",
    "RouteStatus",
    "SeriesTotals",
    "Spend",
    "SpendLine",
    "Upstreams",
    "UsageLine",
    "UsageSeries",
    "UsageSummary",
    "UsageTotals",
]
