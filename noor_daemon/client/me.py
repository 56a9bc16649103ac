"""MeClient: the self-service API (/v1/me) for a key holder, authenticated by the API key itself.

A key holder sees its own account only. /v1/me answers errors in OpenAI's shape, which is
mapped here to the same AdminApiError the admin client raises, so callers handle one class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp

from .billing import AccountBilling, BillingLink
from .dashboard import QuotaReport, UsageSeries, _quota, _usage_series
from .export import ExportFormat, ExportProgress, _download_export
from .http import DEFAULT_URL, AdminApiError, _DaemonClient
from .models import ExportResult, MeInfo, _from_json, _me_info


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
        return _me_info(await self._request("GET", "/v1/me"))

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
