"""The transport both clients share: one lazily opened aiohttp session with a bearer credential.

Every failure reaches the caller as one of two exceptions, AdminApiError (the daemon answered
with an error) or DaemonUnreachable (nothing answered), whichever API and error shape is behind.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import asyncio
import os
import ssl
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from .models import Health, _from_json

DEFAULT_URL = "http://127.0.0.1:8787"


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


class InsecureUrl(ValueError):
    """A credential would cross the network in the clear: refused before any byte is sent."""


def cleartext_to_network(url: str) -> bool:
    """Whether `url` is plain http:// to a host that is not this machine."""
    parsed = urlsplit(url)
    if parsed.scheme != "http":
        return False
    host = (parsed.hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it resolves to who knows where


class _DaemonClient:
    """One lazily opened session with a bearer credential; errors mapped to our two exceptions."""

    def __init__(self, base_url: str, bearer: str | None, timeout: float, *, refuse_cleartext: bool = False) -> None:
        if refuse_cleartext and bearer and cleartext_to_network(base_url):
            raise InsecureUrl(
                f"refusing to send the admin token to {urlsplit(base_url).hostname} over plain http://: "
                "use https:// (the daemon's [server] tls_cert and tls_key; `noor tls self-signed`)"
            )
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
