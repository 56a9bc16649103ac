"""/admin/v1/billing: the daemon's billing state; per account: plan, usage, estimate, invoices, Checkout and portal links."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin import requests
from noor_daemon.admin.errors import AdminError, bad_request
from noor_daemon.billing.service import BillingConflict, BillingInvalid, BillingNotConfigured
from noor_daemon.billing.stripe_api import Link, StripeUnavailable
from noor_daemon.state import ACCOUNTS, BILLING

routes = web.RouteTableDef()


def _links(account_id: str) -> dict[str, str]:
    return {
        "checkout": f"/admin/v1/billing/accounts/{account_id}/checkout",
        "portal": f"/admin/v1/billing/accounts/{account_id}/portal",
    }


async def _answer(make) -> web.Response:
    try:
        link: Link = await make()
    except BillingNotConfigured as exc:
        raise AdminError(409, "billing_not_configured", str(exc)) from None
    except BillingInvalid as exc:
        raise bad_request(str(exc)) from None
    except BillingConflict as exc:
        raise AdminError(409, "conflict", str(exc)) from None
    except StripeUnavailable as exc:
        raise AdminError(502, "stripe_unavailable", f"Stripe could not be reached ({exc.reason}); try again.") from None
    return web.json_response({"id": link.id, "url": link.url, "expires_at": link.expires_at}, status=201)


@routes.get("/billing")
async def billing_summary(request: web.Request) -> web.Response:
    """Whether billing is configured; customers, subscriptions, grace periods, the meter outbox, webhooks."""
    return web.json_response(await request.config_dict[BILLING].summary())


@routes.get("/billing/accounts/{ref}")
async def account_billing(request: web.Request) -> web.Response:
    """The dashboard's billing screen for one account (`configured: false` and local data only without Stripe)."""
    account = await request.config_dict[ACCOUNTS].get_account(request.match_info["ref"])
    service = request.config_dict[BILLING]
    return web.json_response(await service.account_document(account, links=_links(account.id)))


@routes.post("/billing/accounts/{ref}/checkout")
async def checkout(request: web.Request) -> web.Response:
    """A Stripe Checkout page subscribing the account to `{"plan": …}`."""
    body = await requests.json_body(request)
    plan = body.get("plan")
    if not isinstance(plan, str) or not plan:
        raise bad_request("`plan` is required: the paid plan to subscribe to.")
    account = await request.config_dict[ACCOUNTS].get_account(request.match_info["ref"])
    return await _answer(lambda: request.config_dict[BILLING].checkout(account, plan))


@routes.post("/billing/accounts/{ref}/portal")
async def portal(request: web.Request) -> web.Response:
    """A Stripe Customer Portal page for the account."""
    account = await request.config_dict[ACCOUNTS].get_account(request.match_info["ref"])
    return await _answer(lambda: request.config_dict[BILLING].portal(account))
