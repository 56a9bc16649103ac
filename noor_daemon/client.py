"""A typed async client of the admin API (/admin/v1), shared by the CLI and the dashboard.

It imports nothing else from noor_daemon, so the dashboard can use it without pulling in
the daemon, and the CLI stays an HTTP client like any other. Finding the admin token is
the caller's job.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import aiohttp

DEFAULT_URL = "http://127.0.0.1:8787"
ADMIN_PREFIX = "/admin/v1"
EXPORT_EVENTS_HEADER = "X-Noor-Export-Events"

ExportFormat = Literal["json", "csv"]
ExportProgress = Callable[[int, "int | None"], None]
"""Called as `progress(events_received, total_events)`; total is None when the daemon did not say."""


class AdminApiError(Exception):
    """The daemon answered with an error: `{"error": {"status", "code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class DaemonUnreachable(Exception):
    """Nothing answered at the URL: the daemon is not running, or listens elsewhere."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"no NoorAPI daemon answers at {url} ({reason})")
        self.url = url
        self.reason = reason


_T = TypeVar("_T")


def _from_json(cls: type[_T], data: dict[str, Any]) -> _T:
    """Build a dataclass from JSON, ignoring fields a newer daemon may add."""
    return cls(**{f.name: data.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    plan: str
    status: str
    created_at: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: its display prefix only, never the secret or its hash."""

    id: str
    account_id: str
    prefix: str
    masked: str
    name: str | None
    models: list[str] | None
    limits: dict[str, Any] | None
    status: str
    state: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IssuedKey(KeyInfo):
    """A key just created or rotated: `key` is the full secret, shown this once."""

    key: str = field(default="", repr=False)


@dataclass(frozen=True)
class ModelUsage:
    model: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    mean_latency_ms: float | None


@dataclass(frozen=True)
class UsageTotals:
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class UsageSummary:
    hours: int
    models: list[ModelUsage]
    totals: UsageTotals

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Health:
    status: str
    version: str | None
    simulator_only: bool | None
    limits: str | None = None
    """`local` (this daemon's own counts), `shared` (in Redis) or `fallback` (Redis configured, unreachable)."""
    storage: str | None = None
    """`sqlite` (the file in the data dir) or `postgresql` (shared by several daemons)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExportResult:
    path: str
    format: str
    events: int | None
    """The event count the daemon announced, None if it did not."""
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _DaemonClient:
    """One lazily opened session with a bearer credential; errors mapped to our two exceptions."""

    def __init__(self, base_url: str, bearer: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._bearer = bearer
        self._timeout = aiohttp.ClientTimeout(total=None, connect=min(timeout, 10.0), sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Bearer {self._bearer}"} if self._bearer else {}
            self._session = aiohttp.ClientSession(headers=headers, timeout=self._timeout, connector=_connector())
        return self._session

    @staticmethod
    async def _error_from(response: aiohttp.ClientResponse) -> AdminApiError:
        raise NotImplementedError

    async def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None) -> Any:
        try:
            async with self._http().request(method, self.base_url + path, json=json, params=params) as response:
                if response.status >= 400:
                    raise await self._error_from(response)
                return await response.json(content_type=None)
        except aiohttp.ClientConnectionError as exc:
            raise DaemonUnreachable(self.base_url, _reason(exc)) from None
        except asyncio.TimeoutError:
            raise DaemonUnreachable(self.base_url, "timed out") from None

    async def healthz(self) -> Health:
        return _from_json(Health, await self._request("GET", "/healthz"))


class AdminClient(_DaemonClient):
    """`async with AdminClient(url, token) as admin: await admin.list_accounts()`."""

    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, *, timeout: float = 30.0) -> None:
        super().__init__(base_url, token, timeout)

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
        self, ref: str, *, email: str | None = None, plan: str | None = None, status: str | None = None
    ) -> Account:
        changes = {k: v for k, v in (("email", email), ("plan", plan), ("status", status)) if v is not None}
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

    async def rotate_key(self, key_id: str) -> IssuedKey:
        """Revoke the key and issue its replacement; the new secret is in `key`."""
        return _from_json(IssuedKey, await self._admin("POST", f"/keys/{_segment(key_id)}/rotate"))

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

    async def routes(self) -> list[dict[str, Any]]:
        """Every upstream route with its breaker state and moving latency/error aggregates."""
        return (await self._admin("GET", "/routes"))["data"]

    # -- usage ---------------------------------------------------------------------

    async def usage_summary(self, hours: int = 24, account: str | None = None) -> UsageSummary:
        params = {"hours": str(hours), **({"account": account} if account else {})}
        data = await self._admin("GET", "/usage/summary", params=params)
        return UsageSummary(
            hours=data["hours"],
            models=[_from_json(ModelUsage, m) for m in data["models"]],
            totals=_from_json(UsageTotals, data["totals"]),
        )

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
        data = await self._admin("GET", "/upstreams")
        return Upstreams(
            since=data["since"],
            now=data["now"],
            providers=[_from_json(ProviderHealth, p) for p in data["providers"]],
            routes=[_from_json(RouteStatus, r) for r in data["routes"]],
        )

    async def usage_series(
        self, range: str = "day", group: str = "model", *, account: str | None = None, limit: int = 8
    ) -> UsageSeries:
        """Requests and tokens over `range` (hour, day, 7d, 30d, 90d) by model, key or account."""
        params = {"range": range, "group": group, "limit": str(limit), **({"account": account} if account else {})}
        return _usage_series(await self._admin("GET", "/usage/series", params=params))

    async def catalog(self) -> Catalog:
        """Plans with their limits, model names, prices, and whether billing is configured."""
        data = await self._admin("GET", "/catalog")
        return Catalog(
            plans=data["plans"],
            default_plan=data["default_plan"],
            models=data["models"],
            prices=data["prices"],
            billing_configured=bool(data.get("billing", {}).get("configured")),
            retention_days=data.get("retention_days"),
        )

    async def account_quota(self, ref: str) -> QuotaReport:
        """Every limit of the account and of each live key: used, remaining, reset time."""
        return _quota(await self._admin("GET", f"/accounts/{_segment(ref)}/quota"))

    async def suspend_account(self, ref: str) -> Account:
        return _from_json(Account, await self._admin("POST", f"/accounts/{_segment(ref)}/suspend"))

    async def unsuspend_account(self, ref: str) -> Account:
        return _from_json(Account, await self._admin("POST", f"/accounts/{_segment(ref)}/unsuspend"))

    async def suspend_key(self, key_id: str, reason: str | None = None) -> KeyInfo:
        body = {"reason": reason} if reason else {}
        return _from_json(KeyInfo, await self._admin("POST", f"/keys/{_segment(key_id)}/suspend", json=body))

    async def unsuspend_key(self, key_id: str) -> KeyInfo:
        return _from_json(KeyInfo, await self._admin("POST", f"/keys/{_segment(key_id)}/unsuspend", json={}))

    async def set_key_limits(self, key_id: str, limits: dict[str, int]) -> KeyInfo:
        return _from_json(KeyInfo, await self._admin("PATCH", f"/keys/{_segment(key_id)}", json={"limits": limits}))

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
        data = await self._admin("GET", "/privacy/requests", params=params)
        return PrivacyRequestPage(
            [_from_json(PrivacyRequest, r) for r in data["data"]], data.get("next_before"), data.get("open", 0),
            data.get("overdue", 0),
        )

    async def record_privacy_request(self, kind: str, account: str, note: str | None = None) -> PrivacyRequest:
        body = {"kind": kind, "account": account, **({"note": note} if note else {})}
        return _from_json(PrivacyRequest, await self._admin("POST", "/privacy/requests", json=body))

    async def complete_privacy_request(self, request_id: int, note: str | None = None) -> PrivacyRequest:
        body = {"note": note} if note else {}
        return _from_json(PrivacyRequest, await self._admin("POST", f"/privacy/requests/{int(request_id)}/complete", json=body))

    async def retention_status(self) -> RetentionStatus:
        data = await self._admin("GET", "/privacy/retention")
        last = data.get("last_run")
        return RetentionStatus(
            usage_days=data["usage_days"], cutoff=data.get("cutoff"), interval_seconds=data.get("interval_seconds"),
            last_run=_from_json(RetentionReport, last) if last else None, next_run_at=data.get("next_run_at"),
        )

    async def run_retention(self, *, dry_run: bool = False) -> RetentionReport:
        """Remove usage past the retention limit now, or with `dry_run` count what would go."""
        return _from_json(RetentionReport, await self._admin("POST", "/privacy/retention/run", json={"dry_run": dry_run}))

    async def policies(self) -> PolicyOverview:
        data = await self._admin("GET", "/privacy/policies")
        return PolicyOverview(
            current=_from_json(PolicyVersion, data["current"]) if data.get("current") else None,
            upcoming=[_from_json(PolicyVersion, v) for v in data.get("upcoming") or []],
            previous=[_from_json(PolicyVersion, v) for v in data.get("previous") or []],
            notice_days=data.get("notice_days", 14),
        )

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
        data = await self._admin("GET", "/audit", params=params)
        return AuditPage([_from_json(AuditEntry, e) for e in data["data"]], data.get("next_before"))

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


# -- helpers ---------------------------------------------------------------------


def _connector() -> aiohttp.TCPConnector:
    """HTTPS verified against the system's store, or only NOOR_CA_BUNDLE's CA (a `noor tls self-signed` ca.pem)."""
    bundle = os.environ.get("NOOR_CA_BUNDLE")
    if not bundle:
        return aiohttp.TCPConnector()
    return aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=os.path.expanduser(bundle)))


def _segment(value: str) -> str:
    """One URL path segment, so an email or id can never reach another route."""
    return quote(value, safe="@")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.strerror or "connection refused"
    return type(exc).__name__


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _error_from(response: aiohttp.ClientResponse) -> AdminApiError:
    """The admin error shape when the daemon sent one, the HTTP status otherwise."""
    try:
        error = (await response.json(content_type=None))["error"]
        return AdminApiError(int(error["status"]), str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
        reason = response.reason or "HTTP error"
        return AdminApiError(response.status, reason.lower().replace(" ", "_"), reason)


def _private_temp_file(target: Path) -> Path:
    """An empty 0600 file beside `target`, created with os.open so it is never readable by others."""
    directory = target.parent if str(target.parent) else Path(".")
    for _ in range(100):
        candidate = directory / f".{target.name}.{os.urandom(4).hex()}.partial"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a temporary file in {directory}")


# Lines before the first event: JSON puts its header and `[` on the first line; CSV has a header row.
_LINES_BEFORE_EVENTS = {"json": 0, "csv": 1}


async def _write_counting(
    response: aiohttp.ClientResponse, partial: Path, format: str, total: int | None, progress: ExportProgress | None
) -> int:
    """Write the body to `partial`; report events as their lines arrive (one event per line)."""
    written = newlines = reported = 0
    skip = _LINES_BEFORE_EVENTS.get(format, 0)
    fd = os.open(partial, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        async for chunk in response.content.iter_chunked(64 * 1024):
            handle.write(chunk)
            written += len(chunk)
            newlines += chunk.count(b"\n")
            done = max(0, newlines - skip)
            if total is not None:
                done = min(done, total)
            if progress is not None and done != reported:
                progress(done, total)
                reported = done
        handle.flush()
        os.fsync(handle.fileno())
    if progress is not None and total is not None and reported != total:
        progress(total, total)
    return written


# -- the dashboard's views ---------------------------------------------------------------


@dataclass(frozen=True)
class CallEvent:
    """One metered call from the live feed: ids and numbers only, never content or an email."""

    seq: int
    ts: str
    ts_ms: int
    account_id: str | None
    key_prefix: str | None
    model: str
    provider: str | None
    endpoint: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None
    stream: bool
    estimated: bool

    @property
    def total_tokens(self) -> int:
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


@dataclass(frozen=True)
class FeedGap:
    """The daemon skipped `dropped` calls for this reader, which had fallen behind."""

    dropped: int


@dataclass(frozen=True)
class MetricsSummary:
    seconds: float
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    rpm: float
    tpm: float
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None


@dataclass(frozen=True)
class Overview:
    now: str
    window_seconds: int
    step_seconds: int
    start: str
    series: dict[str, list[float | None]]
    """requests, errors, tokens, rpm, tpm, error_rate, latency_p50_ms, latency_p95_ms, ttft_p50_ms: one value per step."""
    window: MetricsSummary
    last_minute: MetricsSummary
    loading: bool
    feed: dict[str, Any]


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    kind: str
    host: str | None
    routes: int
    requests: int
    errors: int
    error_rate: float | None
    latency_ms: float | None
    state: str
    """ok, degraded, down or idle."""


@dataclass(frozen=True)
class RouteStatus:
    provider: str
    model: str
    upstream_model: str
    breaker: str | None
    consecutive_failures: int
    requests: int
    errors: int
    error_rate: float | None
    latency_ms: float | None
    ttft_ms: float | None
    state: str


@dataclass(frozen=True)
class Upstreams:
    since: str
    now: str
    providers: list[ProviderHealth]
    routes: list[RouteStatus]


@dataclass(frozen=True)
class SeriesTotals:
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    unpriced_models: list[str]


@dataclass(frozen=True)
class UsageLine:
    """One group's series: `key` is the model, key id or account id; `(other)` folds the rest."""

    key: str
    label: str
    account_id: str | None
    requests: list[int]
    errors: list[int]
    prompt_tokens: list[int]
    completion_tokens: list[int]
    totals: SeriesTotals

    @property
    def tokens(self) -> list[int]:
        return [p + c for p, c in zip(self.prompt_tokens, self.completion_tokens, strict=True)]


@dataclass(frozen=True)
class UsageSeries:
    range: str
    group: str
    bucket_seconds: int
    start: str
    end: str
    now: str
    buckets: list[str]
    source: str
    series: list[UsageLine]
    groups: int
    totals: SeriesTotals
    priced: bool


@dataclass(frozen=True)
class LimitStatus:
    scope: str
    scope_id: str
    limit: str
    value: int
    used: int
    remaining: int
    resets_at: str | None


@dataclass(frozen=True)
class KeyQuota:
    key: KeyInfo
    limits: list[LimitStatus]


@dataclass(frozen=True)
class QuotaReport:
    account: Account
    limits: list[LimitStatus]
    keys: list[KeyQuota]


@dataclass(frozen=True)
class Catalog:
    plans: dict[str, dict[str, Any]]
    """Plan name to its limits (only those set)."""
    default_plan: str
    models: list[str]
    prices: dict[str, dict[str, float]]
    """Model (or glob) to `input_per_million` and `output_per_million`."""
    billing_configured: bool
    retention_days: int | None


@dataclass(frozen=True)
class MeInfo:
    """What a key holder may see: its account, the key it used, and the account's keys (masked)."""

    account: Account
    key: KeyInfo
    api_keys: list[KeyInfo]


def _summary(data: dict[str, Any]) -> MetricsSummary:
    return _from_json(MetricsSummary, data)


def _overview(data: dict[str, Any]) -> Overview:
    return Overview(
        now=data["now"],
        window_seconds=data["window_seconds"],
        step_seconds=data["step_seconds"],
        start=data["start"],
        series=data["series"],
        window=_summary(data["window"]),
        last_minute=_summary(data["last_minute"]),
        loading=bool(data.get("loading")),
        feed=data.get("feed") or {},
    )


def _totals(data: dict[str, Any]) -> SeriesTotals:
    return SeriesTotals(
        requests=data["requests"],
        errors=data["errors"],
        prompt_tokens=data["prompt_tokens"],
        completion_tokens=data["completion_tokens"],
        cost=data.get("cost"),
        unpriced_models=list(data.get("unpriced_models") or []),
    )


def _usage_series(data: dict[str, Any]) -> UsageSeries:
    lines = [
        UsageLine(
            key=s["key"],
            label=s.get("label") or s["key"],
            account_id=s.get("account_id"),
            requests=s["requests"],
            errors=s["errors"],
            prompt_tokens=s["prompt_tokens"],
            completion_tokens=s["completion_tokens"],
            totals=_totals(s["totals"]),
        )
        for s in data["series"]
    ]
    return UsageSeries(
        range=data["range"],
        group=data["group"],
        bucket_seconds=data["bucket_seconds"],
        start=data["start"],
        end=data["end"],
        now=data["now"],
        buckets=data["buckets"],
        source=data["source"],
        series=lines,
        groups=data.get("groups", len(lines)),
        totals=_totals(data["totals"]),
        priced=bool(data["totals"].get("priced")),
    )


def _quota(data: dict[str, Any]) -> QuotaReport:
    return QuotaReport(
        account=_from_json(Account, data["account"]),
        limits=[_from_json(LimitStatus, row) for row in data["limits"]],
        keys=[
            KeyQuota(_from_json(KeyInfo, k), [_from_json(LimitStatus, row) for row in k.get("limits") or []])
            for k in data["keys"]
        ],
    )


async def _sse_stream(
    http: aiohttp.ClientSession,
    base_url: str,
    url: str,
    params: dict[str, str] | None,
    headers: dict[str, str] | None,
    error_from: Callable[[aiohttp.ClientResponse], Awaitable[Exception]],
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) for each server-sent event. The daemon sends a comment every 10 s,
    so a read that waits 45 s means the connection is dead."""
    timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=45.0)
    try:
        async with http.get(url, params=params, headers=headers, timeout=timeout) as response:
            if response.status >= 400:
                raise await error_from(response)
            name, data = "message", []
            async for raw in response.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if data:
                        try:
                            yield name, json.loads("\n".join(data))
                        except ValueError:
                            pass
                    name, data = "message", []
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
    except aiohttp.ClientConnectionError as exc:
        raise DaemonUnreachable(base_url, _reason(exc)) from None
    except asyncio.TimeoutError:
        raise DaemonUnreachable(base_url, "timed out") from None


async def _download_export(
    http: aiohttp.ClientSession,
    base_url: str,
    url: str,
    target: Path,
    format: str,
    progress: ExportProgress | None,
    error_from: Callable[[aiohttp.ClientResponse], Awaitable[Exception]],
) -> ExportResult:
    """Stream an export into `target` through a private temporary file (see `AdminClient.export_account`)."""
    partial = _private_temp_file(target)
    try:
        try:
            async with http.get(url, params={"format": format}) as response:
                if response.status >= 400:
                    raise await error_from(response)
                total = _int_or_none(response.headers.get(EXPORT_EVENTS_HEADER))
                written = await _write_counting(response, partial, format, total, progress)
        except aiohttp.ClientConnectionError as exc:
            raise DaemonUnreachable(base_url, _reason(exc)) from None
        except asyncio.TimeoutError:
            raise DaemonUnreachable(base_url, "timed out") from None
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportResult(str(target), format, total, written)


# -- self-service: /v1/me for a key holder -------------------------------------------------


async def _me_error_from(response: aiohttp.ClientResponse) -> AdminApiError:
    """/v1/me answers in OpenAI's error shape: `{"error": {"message", "type", "code"}}`."""
    try:
        error = (await response.json(content_type=None))["error"]
        code = error.get("code") or error.get("type") or "error"
        return AdminApiError(response.status, str(code), str(error.get("message") or response.reason))
    except (ValueError, KeyError, TypeError, AttributeError, aiohttp.ContentTypeError):
        reason = response.reason or "HTTP error"
        return AdminApiError(response.status, reason.lower().replace(" ", "_"), reason)


class MeClient(_DaemonClient):
    """A key holder's view of its own account (/v1/me): `async with MeClient(url, api_key) as me: await me.me()`.

    Errors are AdminApiError (with the daemon's status and code) and DaemonUnreachable, as for AdminClient.
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str = "", *, timeout: float = 30.0) -> None:
        super().__init__(base_url, api_key, timeout)

    @staticmethod
    async def _error_from(response: aiohttp.ClientResponse) -> AdminApiError:
        return await _me_error_from(response)

    async def me(self) -> MeInfo:
        data = await self._request("GET", "/v1/me")
        return MeInfo(
            account=_from_json(Account, data["account"]),
            key=_from_json(KeyInfo, data["key"]),
            api_keys=[_from_json(KeyInfo, k) for k in data.get("api_keys") or []],
        )

    async def quota(self) -> QuotaReport:
        return _quota(await self._request("GET", "/v1/me/quota"))

    async def usage_series(self, range: str = "day", group: str = "model", *, limit: int = 8) -> UsageSeries:
        """The account's own usage (`group` is model or key)."""
        return _usage_series(
            await self._request("GET", "/v1/me/usage", params={"range": range, "group": group, "limit": str(limit)})
        )

    async def export(
        self,
        path: str | os.PathLike[str],
        *,
        format: ExportFormat = "json",
        progress: ExportProgress | None = None,
        overwrite: bool = False,
    ) -> ExportResult:
        """The account's own data into `path` (0600), like `AdminClient.export_account`."""
        target = Path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists")
        url = f"{self.base_url}/v1/me/export"
        return await _download_export(self._http(), self.base_url, url, target, format, progress, _me_error_from)

    async def request_deletion(self) -> dict[str, Any]:
        """Step one of deleting the account: a confirmation token (nothing is deleted yet)."""
        return await self._request("POST", "/v1/me/deletion", json={})

    async def confirm_deletion(self, token: str) -> dict[str, Any]:
        """Step two: delete the account, its keys and its usage."""
        return await self._request("POST", "/v1/me/deletion/confirm", json={"token": token})

    async def billing(self) -> AccountBilling:
        """The account's own billing state (`configured` false when the daemon has no Stripe)."""
        return _from_json(AccountBilling, await self._request("GET", "/v1/me/billing"))

    async def billing_checkout(self, plan: str) -> BillingLink:
        return _from_json(BillingLink, await self._request("POST", "/v1/me/billing/checkout", json={"plan": plan}))

    async def billing_portal(self) -> BillingLink:
        return _from_json(BillingLink, await self._request("POST", "/v1/me/billing/portal", json={}))


# -- data rights ---------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    id: str
    deleted: bool
    pseudonym: str
    """How the audit log and privacy requests name the account from now on (a salted hash of its email)."""
    request_id: int
    notice: str
    """"queued" (a deletion notice goes out over SMTP, then is forgotten) or "skipped" (no SMTP)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrivacyRequest:
    id: int
    kind: str
    account_id: str
    source: str
    status: str
    awaiting_confirmation: bool
    received_at: str
    due_at: str
    completed_at: str | None
    overdue: bool
    days_left: int | None
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrivacyRequestPage:
    data: list[PrivacyRequest]
    next_before: int | None
    open: int
    overdue: int


@dataclass(frozen=True)
class RetentionReport:
    dry_run: bool
    usage_days: int
    cutoff: str | None
    usage_events: int
    usage_hourly: int
    ran_at: str | None = None
    actor: str | None = None
    batches: int | None = None
    duration_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetentionStatus:
    usage_days: int
    cutoff: str | None
    interval_seconds: float | None
    last_run: RetentionReport | None
    next_run_at: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    published_at: str
    effective_at: str
    summary: str
    material: bool
    url: str | None
    notices: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyOverview:
    current: PolicyVersion | None
    upcoming: list[PolicyVersion]
    previous: list[PolicyVersion]
    notice_days: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: str
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    account_id: str | None
    details: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditPage:
    data: list[AuditEntry]
    next_before: int | None


# -- billing -------------------------------------------------------------------------


@dataclass(frozen=True)
class BillingLink:
    """A Stripe-hosted page (Checkout or the Customer Portal); open `url` in a browser."""

    id: str
    url: str
    expires_at: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccountBilling:
    """One account's billing: Stripe ids and states, this period's usage and its estimate, the last invoices."""

    configured: bool
    account: dict[str, Any]
    """id, email, plan, status."""
    free_plan: str
    paid_plans: dict[str, str]
    """Plan name to its Stripe price id: what Checkout can sell."""
    customer_id: str | None
    subscription: dict[str, Any] | None
    """id, status, plan, current_period_start, current_period_end."""
    grace: dict[str, Any] | None
    """payment_failed_at, grace_until, downgraded_at: while a failed payment is unresolved."""
    period: dict[str, Any]
    """start, end, source (subscription or calendar_month)."""
    usage: dict[str, Any]
    """requests, errors, prompt_tokens, completion_tokens, tokens, models (each with its cost)."""
    estimate: dict[str, Any]
    """amount (at the config's [prices]), priced, unpriced_models, basis."""
    links: dict[str, str]
    """checkout and portal: the paths to POST for a fresh Stripe URL."""
    invoices: list[dict[str, Any]] | None
    """The last invoices from Stripe (None when not configured or Stripe did not answer)."""
    invoices_error: str | None
    meter: dict[str, Any] | None = None
    message: str | None = None

    @property
    def plan(self) -> str:
        return str(self.account.get("plan"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
