"""A typed async client of the admin API (/admin/v1), shared by the CLI and the dashboard.

It imports nothing else from noor_daemon, so the dashboard can use it without pulling in
the daemon, and the CLI stays an HTTP client like any other. Finding the admin token is
the caller's job.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar
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


class AdminClient:
    """`async with AdminClient(url, token) as admin: await admin.list_accounts()`."""

    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=None, connect=min(timeout, 10.0), sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            self._session = aiohttp.ClientSession(headers=headers, timeout=self._timeout)
        return self._session

    # -- plumbing ------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None) -> Any:
        url = self.base_url + path
        try:
            async with self._http().request(method, url, json=json, params=params) as response:
                if response.status >= 400:
                    raise await _error_from(response)
                return await response.json(content_type=None)
        except aiohttp.ClientConnectionError as exc:
            raise DaemonUnreachable(self.base_url, _reason(exc)) from None
        except asyncio.TimeoutError:
            raise DaemonUnreachable(self.base_url, "timed out") from None

    async def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self._request(method, ADMIN_PREFIX + path, **kwargs)

    # -- health --------------------------------------------------------------------

    async def healthz(self) -> Health:
        return _from_json(Health, await self._request("GET", "/healthz"))

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
    ) -> IssuedKey:
        """`expires_in` is in seconds."""
        body: dict[str, Any] = {"account": account}
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
        partial = _private_temp_file(target)
        try:
            try:
                async with self._http().get(url, params={"format": format}) as response:
                    if response.status >= 400:
                        raise await _error_from(response)
                    total = _int_or_none(response.headers.get(EXPORT_EVENTS_HEADER))
                    written = await _write_counting(response, partial, format, total, progress)
            except aiohttp.ClientConnectionError as exc:
                raise DaemonUnreachable(self.base_url, _reason(exc)) from None
            except asyncio.TimeoutError:
                raise DaemonUnreachable(self.base_url, "timed out") from None
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return ExportResult(str(target), format, total, written)


# -- helpers ---------------------------------------------------------------------


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
