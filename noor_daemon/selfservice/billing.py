"""/v1/me/billing for a key holder: the account's own billing state, and links to Checkout and the portal."""

from __future__ import annotations

import orjson
from aiohttp import web

from noor_daemon.billing.service import BillingConflict, BillingInvalid, BillingNotConfigured
from noor_daemon.billing.stripe_api import Link, StripeUnavailable
from noor_daemon.domain import errors
from noor_daemon.domain.errors import GatewayError
from noor_daemon.selfservice.account import caller
from noor_daemon.state import BILLING, KEYRING

routes = web.RouteTableDef()

LINKS = {"checkout": "/v1/me/billing/checkout", "portal": "/v1/me/billing/portal"}


def _account(request: web.Request):
    return request.app[KEYRING].accounts[caller(request).account_id]


@routes.get("/v1/me/billing")
async def my_billing(request: web.Request) -> web.Response:
    """Plan, subscription, this period's usage and estimated charge, the last invoices."""
    account = _account(request)
    return web.json_response(await request.app[BILLING].account_document(account, links=LINKS, with_meter=False))


async def _link(request: web.Request, make) -> web.Response:
    try:
        link: Link = await make()
    except BillingNotConfigured as exc:
        raise GatewayError(404, "not_found", str(exc), code="billing_not_configured") from None
    except BillingInvalid as exc:
        raise errors.bad_request(str(exc), param="plan") from None
    except BillingConflict as exc:
        raise GatewayError(409, "invalid_request", str(exc), code="already_subscribed") from None
    except StripeUnavailable as exc:
        raise GatewayError(502, "upstream", f"Stripe could not be reached ({exc.reason}); try again.", code="stripe_unavailable") from None
    return web.json_response({"id": link.id, "url": link.url, "expires_at": link.expires_at}, status=201)


@routes.post("/v1/me/billing/checkout")
async def my_checkout(request: web.Request) -> web.Response:
    """A Stripe Checkout page for `{"plan": …}`: Stripe collects the card, never this daemon."""
    account = _account(request)
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        raise errors.bad_request('The body must be JSON: {"plan": "…"}.') from None
    plan = body.get("plan") if isinstance(body, dict) else None
    if not isinstance(plan, str) or not plan:
        raise errors.bad_request("`plan` is required: the paid plan to subscribe to.", param="plan")
    return await _link(request, lambda: request.app[BILLING].checkout(account, plan, actor="self"))


@routes.post("/v1/me/billing/portal")
async def my_portal(request: web.Request) -> web.Response:
    """A Stripe Customer Portal page: change or cancel the subscription, update the card, see invoices."""
    account = _account(request)
    return await _link(request, lambda: request.app[BILLING].portal(account))
