"""AdminClient: the admin API (/admin/v1) for the CLI and the dashboard, with the admin token.

Only HTTP lives here: each method sends one request and hands the JSON to its model's parser.
Finding the admin token is the caller's job.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from .billing import AccountBilling, BillingLink
from .dashboard import (
    CallEvent,
    Catalog,
    FeedGap,
    Overview,
    QuotaReport,
    Upstreams,
    UsageSeries,
    _catalog,
    _overview,
    _quota,
    _upstreams,
    _usage_series,
)
from .doctor import DoctorReport
from .export import ExportFormat, ExportProgress, _download_export
from .http import DEFAULT_URL, AdminApiError, _DaemonClient, _segment
from .models import (
    Account,
    ExportResult,
    IssuedKey,
    KeyInfo,
    UsageSummary,
    _from_json,
    _usage_summary,
)
from .money import Prices, Spend
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
    _audit_page,
    _policy_overview,
    _privacy_request_page,
    _retention_status,
)
from .sse import _sse_stream

ADMIN_PREFIX = "/admin/v1"


async def _error_from(response: aiohttp.ClientResponse) -> AdminApiError:
    """The admin error shape when the daemon sent one, the HTTP status otherwise."""
    try:
        error = (await response.json(content_type=None))["error"]
        return AdminApiError(int(error["status"]), str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
        reason = response.reason or "HTTP error"
        return AdminApiError(response.status, reason.lower().replace(" ", "_"), reason)


class AdminClient(_DaemonClient):
    """`async with AdminClient(url, token) as admin: await admin.list_accounts()`."""

    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, *, timeout: float = 30.0) -> None:
        """Raises `InsecureUrl` when `token` would go to another machine over plain http://."""
        super().__init__(base_url, token, timeout, refuse_cleartext=True)

    @staticmethod
    async def _error_from(response: aiohttp.ClientResponse) -> AdminApiError:
        return await _error_from(response)

    async def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self._request(method, ADMIN_PREFIX + path, **kwargs)

    # -- accounts ------------------------------------------------------------------

    async def create_account(self, email: str, plan: str | None = None) -> Account:
        body = {"email": email, **({"plan": plan} if plan else {})}
        return _from_json(Account, await self._admin("POST", "/accounts", json=body))

    async def list_accounts(self) -> list[Account]:
        data = await self._admin("GET", "/accounts")
        return [_from_json(Account, a) for a in data["data"]]

    async def get_account(self, ref: str) -> Account:
        """`ref` is an account id (`acct_…`) or an email."""
        return _from_json(Account, await self._admin("GET", f"/accounts/{_segment(ref)}"))

    async def update_account(
        self,
        ref: str,
        *,
        email: str | None = None,
        plan: str | None = None,
        status: str | None = None,
        limits: dict[str, float] | None = None,
    ) -> Account:
        """Change what is given; `limits` replaces the account's own limits and budgets (`{}` clears them)."""
        changes: dict[str, Any] = {k: v for k, v in (("email", email), ("plan", plan), ("status", status)) if v is not None}
        if limits is not None:
            changes["limits"] = limits or None
        return _from_json(Account, await self._admin("PATCH", f"/accounts/{_segment(ref)}", json=changes))

    async def delete_account(self, ref: str) -> str:
        """Delete the account with its keys and usage; returns its id."""
        return (await self._admin("DELETE", f"/accounts/{_segment(ref)}"))["id"]

    # -- keys ----------------------------------------------------------------------

    async def create_key(
        self,
        account: str,
        *,
        name: str | None = None,
        models: list[str] | None = None,
        expires_in: int | None = None,
        limits: dict[str, int] | None = None,
    ) -> IssuedKey:
        """`expires_in` is in seconds; `limits` are the key's own (tighter) overrides of its plan."""
        body: dict[str, Any] = {"account": account}
        if limits:
            body["limits"] = limits
        if name is not None:
            body["name"] = name
        if models is not None:
            body["models"] = models
        if expires_in is not None:
            body["expires_in"] = expires_in
        return _from_json(IssuedKey, await self._admin("POST", "/keys", json=body))

    async def list_keys(self, account: str | None = None) -> list[KeyInfo]:
        params = {"account": account} if account else None
        data = await self._admin("GET", "/keys", params=params)
        return [_from_json(KeyInfo, k) for k in data["data"]]

    async def get_key(self, key_id: str) -> KeyInfo:
        return _from_json(KeyInfo, await self._admin("GET", f"/keys/{_segment(key_id)}"))

    async def revoke_key(self, key_id: str) -> KeyInfo:
        return _from_json(KeyInfo, await self._admin("POST", f"/keys/{_segment(key_id)}/revoke"))

    async def rotate_key(self, key_id: str, *, grace: int | None = None) -> IssuedKey:
        """Issue the key's replacement (its secret is in `key`); the old key is revoked at once, or
        keeps working `grace` seconds more (until `previous_expires_at`)."""
        body = {"grace_seconds": grace} if grace else None
        return _from_json(IssuedKey, await self._admin("POST", f"/keys/{_segment(key_id)}/rotate", json=body))

    async def revoke_key_by_prefix(self, prefix: str) -> KeyInfo:
        """Revoke the one key with this display prefix (`sk-noor-AbC123`) or the whole key; 409 if several match."""
        data = await self._admin("POST", "/keys/revoke-by-prefix", json={"prefix": prefix})
        return _from_json(KeyInfo, data)

    async def rotate_admin_token(self) -> dict[str, Any]:
        """A new admin token (`token`, shown this once); the one this client holds stops working."""
        data = await self._admin("POST", "/admin-token/rotate")
        self._bearer = data["token"]
        await self.close()  # the next call opens a session with the new token
        return data

    # -- limits, quotas, suspensions ----------------------------------------------------

    async def set_key_limits(self, key_id: str, limits: dict[str, int]) -> KeyInfo:
        return _from_json(KeyInfo, await self._admin("PATCH", f"/keys/{_segment(key_id)}", json={"limits": limits}))

    async def suspend_key(self, key_id: str, reason: str | None = None) -> KeyInfo:
        body = {"reason": reason} if reason else {}
        return _from_json(KeyInfo, await self._admin("POST", f"/keys/{_segment(key_id)}/suspend", json=body))

    async def unsuspend_key(self, key_id: str) -> KeyInfo:
        return _from_json(KeyInfo, await self._admin("POST", f"/keys/{_segment(key_id)}/unsuspend", json={}))

    async def suspend_account(self, ref: str) -> Account:
        return _from_json(Account, await self._admin("POST", f"/accounts/{_segment(ref)}/suspend"))

    async def unsuspend_account(self, ref: str) -> Account:
        return _from_json(Account, await self._admin("POST", f"/accounts/{_segment(ref)}/unsuspend"))

    async def quota(self, ref: str) -> dict[str, Any]:
        """Every limit of the account and of each live key: used, remaining, reset time."""
        return await self._admin("GET", f"/accounts/{_segment(ref)}/quota")

    async def abuse(self) -> dict[str, Any]:
        """Addresses cooling off after failed authentications, and recent abuse flags."""
        return await self._admin("GET", "/abuse")

    # -- config and routes -----------------------------------------------------------

    async def reload_config(self) -> dict[str, Any]:
        """Ask the daemon to re-read its config file; a bad file raises AdminApiError (400)."""
        return await self._admin("POST", "/config/reload")

    async def doctor(self) -> DoctorReport:
        """What the running daemon reports about itself: config file, data dir, ledger, keyring, secrets, limits."""
        return _from_json(DoctorReport, await self._admin("GET", "/doctor"))

    async def routes(self) -> list[dict[str, Any]]:
        """Every upstream route with its breaker state and moving latency/error aggregates."""
        return (await self._admin("GET", "/routes"))["data"]

    # -- usage ---------------------------------------------------------------------

    async def usage_summary(self, hours: int = 24, account: str | None = None) -> UsageSummary:
        params = {"hours": str(hours), **({"account": account} if account else {})}
        return _usage_summary(await self._admin("GET", "/usage/summary", params=params))

    # -- export --------------------------------------------------------------------

    async def export_account(
        self,
        ref: str,
        path: str | os.PathLike[str],
        *,
        format: ExportFormat = "json",
        progress: ExportProgress | None = None,
        overwrite: bool = False,
    ) -> ExportResult:
        """Stream the account's export into `path`, readable by its owner only (0600).

        The bytes go to a private temporary file next to `path` that replaces it only when
        the export is whole, so a failed export leaves no partial file behind.
        Raises FileExistsError when `path` exists and `overwrite` is false.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists")
        url = f"{self.base_url}{ADMIN_PREFIX}/accounts/{_segment(ref)}/export"
        return await _download_export(self._http(), self.base_url, url, target, format, progress, _error_from)

    # -- the dashboard: live feed, overview, upstream health, usage series, quotas ------

    async def events(self, *, after: int | None = None, backlog: int | None = None) -> AsyncIterator[CallEvent | FeedGap]:
        """The live feed of metered calls (server-sent events), until the daemon ends it.

        `after` resumes after a call's `seq` (the daemon replays what it still holds);
        `backlog` asks for that many recent calls first (default: the daemon's, 50).
        A `FeedGap` says the daemon dropped calls because this reader fell behind.
        """
        params = {"backlog": str(backlog)} if backlog is not None else None
        headers = {"Last-Event-ID": str(after)} if after is not None else None
        async for name, data in _sse_stream(
            self._http(), self.base_url, f"{self.base_url}{ADMIN_PREFIX}/events", params, headers, _error_from
        ):
            if name == "call":
                yield _from_json(CallEvent, data)
            elif name == "dropped":
                yield FeedGap(int(data.get("dropped", 0)))

    async def overview(self, *, window: int = 3600, step: int = 60) -> Overview:
        """Rates, error rate and latency percentiles over the last `window` seconds, in `step`-second points."""
        data = await self._admin("GET", "/overview", params={"window": str(window), "step": str(step)})
        return _overview(data)

    async def upstreams(self) -> Upstreams:
        return _upstreams(await self._admin("GET", "/upstreams"))

    async def usage_series(
        self, range: str = "day", group: str = "model", *, account: str | None = None, limit: int = 8
    ) -> UsageSeries:
        """Requests and tokens over `range` (hour, day, 7d, 30d, 90d) by model, key or account."""
        params = {"range": range, "group": group, "limit": str(limit), **({"account": account} if account else {})}
        return _usage_series(await self._admin("GET", "/usage/series", params=params))

    async def catalog(self) -> Catalog:
        """Plans with their limits, model names, prices, and whether billing is configured."""
        return _catalog(await self._admin("GET", "/catalog"))

    async def account_quota(self, ref: str) -> QuotaReport:
        """Every limit of the account and of each live key: used, remaining, reset time."""
        return _quota(await self._admin("GET", f"/accounts/{_segment(ref)}/quota"))

    # -- data rights: privacy requests, retention, policy versions, audit log, mail ---------

    async def change_email(self, ref: str, new_email: str) -> Account:
        """Correct an account's email; the daemon mails the new address and records the correction."""
        return await self.update_account(ref, email=new_email)

    async def erase_account(self, ref: str) -> Erasure:
        """Delete the account like `delete_account`, answering with what the erasure did."""
        return _from_json(Erasure, await self._admin("DELETE", f"/accounts/{_segment(ref)}"))

    async def privacy_requests(
        self,
        *,
        status: str = "all",
        kind: str | None = None,
        account: str | None = None,
        overdue: bool = False,
        limit: int = 100,
        before: int | None = None,
    ) -> PrivacyRequestPage:
        params = {"status": status, "limit": str(limit)}
        if kind:
            params["kind"] = kind
        if account:
            params["account"] = account
        if overdue:
            params["overdue"] = "true"
        if before is not None:
            params["before"] = str(before)
        return _privacy_request_page(await self._admin("GET", "/privacy/requests", params=params))

    async def record_privacy_request(self, kind: str, account: str, note: str | None = None) -> PrivacyRequest:
        body = {"kind": kind, "account": account, **({"note": note} if note else {})}
        return _from_json(PrivacyRequest, await self._admin("POST", "/privacy/requests", json=body))

    async def complete_privacy_request(self, request_id: int, note: str | None = None) -> PrivacyRequest:
        body = {"note": note} if note else {}
        return _from_json(PrivacyRequest, await self._admin("POST", f"/privacy/requests/{int(request_id)}/complete", json=body))

    async def retention_status(self) -> RetentionStatus:
        return _retention_status(await self._admin("GET", "/privacy/retention"))

    async def run_retention(self, *, dry_run: bool = False) -> RetentionReport:
        """Remove usage past the retention limit now, or with `dry_run` count what would go."""
        return _from_json(RetentionReport, await self._admin("POST", "/privacy/retention/run", json={"dry_run": dry_run}))

    async def policies(self) -> PolicyOverview:
        return _policy_overview(await self._admin("GET", "/privacy/policies"))

    async def publish_policy(
        self, *, effective: str, summary: str, material: bool = True, url: str | None = None, notify: bool = True
    ) -> PolicyVersion:
        """A material change must take effect at least 14 days from now (AdminApiError 400 otherwise)."""
        body: dict[str, Any] = {"effective": effective, "summary": summary, "material": material, "notify": notify}
        if url:
            body["url"] = url
        return _from_json(PolicyVersion, await self._admin("POST", "/privacy/policies", json=body))

    async def audit(
        self, *, account: str | None = None, action: str | None = None, limit: int = 100, before: int | None = None
    ) -> AuditPage:
        """One page of the audit log, newest first; pass `next_before` back as `before` for the next."""
        params = {"limit": str(limit)}
        if account:
            params["account"] = account
        if action:
            params["action"] = action
        if before is not None:
            params["before"] = str(before)
        return _audit_page(await self._admin("GET", "/audit", params=params))

    async def audit_entries(self, *, account: str | None = None, action: str | None = None) -> AsyncIterator[AuditEntry]:
        """Every matching entry, newest first, fetched a page at a time."""
        before: int | None = None
        while True:
            page = await self.audit(account=account, action=action, limit=500, before=before)
            for entry in page.data:
                yield entry
            if page.next_before is None:
                return
            before = page.next_before

    async def mail_outbox(self, limit: int = 50) -> dict[str, Any]:
        """Transactional mail: counts by state and the latest messages (no addresses)."""
        return await self._admin("GET", "/mail/outbox", params={"limit": str(limit)})

    # -- billing (Stripe) ---------------------------------------------------------------

    async def spend(self, *, period: str = "month", by: str = "account") -> Spend:
        """What was spent this `period` (day or month) per account, key or model, next to the budgets."""
        return Spend.from_json(await self._admin("GET", "/spend", params={"period": period, "by": by}))

    async def prices(self) -> Prices:
        return Prices.from_json(await self._admin("GET", "/prices"))

    async def billing_status(self) -> dict[str, Any]:
        """Whether billing is configured; customers, subscriptions, grace periods, the meter outbox, webhooks."""
        return await self._admin("GET", "/billing")

    async def account_billing(self, ref: str) -> AccountBilling:
        """The billing screen of one account: plan, subscription, period usage and estimate, invoices, links."""
        return _from_json(AccountBilling, await self._admin("GET", f"/billing/accounts/{_segment(ref)}"))

    async def billing_checkout(self, ref: str, plan: str) -> BillingLink:
        """A Stripe Checkout page subscribing the account to `plan` (AdminApiError 409 billing_not_configured without Stripe)."""
        data = await self._admin("POST", f"/billing/accounts/{_segment(ref)}/checkout", json={"plan": plan})
        return _from_json(BillingLink, data)

    async def billing_portal(self, ref: str) -> BillingLink:
        """A Stripe Customer Portal page for the account."""
        return _from_json(BillingLink, await self._admin("POST", f"/billing/accounts/{_segment(ref)}/portal"))
