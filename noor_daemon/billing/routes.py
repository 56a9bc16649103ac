"""The billing routes outside /admin and /v1/me: Stripe's webhook, and the pages Checkout and the portal return to."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.billing.service import BillingService


def routes(service: BillingService) -> list[web.RouteDef]:
    """Stripe's webhook (its events verified by `Stripe-Signature`; 404 while billing is not configured)
    and the pages Checkout and the portal send the customer back to."""
    return [
        web.post("/stripe/webhook", service.webhooks.handle),
        web.get("/billing/done", billing_done),
        web.get("/billing/cancelled", billing_cancelled),
    ]


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>NoorAPI billing</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto; line-height: 1.5">
<h1>{title}</h1><p>{text}</p></body></html>
"""


async def billing_done(request: web.Request) -> web.Response:
    """Where Checkout and the portal send the customer back (the default `success_url`/`return_url`)."""
    text = "Stripe has your payment details; the plan changes as soon as Stripe confirms it. You can close this tab."
    return web.Response(text=_PAGE.format(title="Thank you", text=text), content_type="text/html")


async def billing_cancelled(request: web.Request) -> web.Response:
    text = "Nothing was charged and your plan is unchanged. You can close this tab."
    return web.Response(text=_PAGE.format(title="Checkout cancelled", text=text), content_type="text/html")
