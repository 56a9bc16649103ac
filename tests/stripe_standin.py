"""A stand-in for Stripe's HTTP API: a real aiohttp server on loopback that the real `stripe` SDK talks to.

It accepts requests as the SDK sends them (form-encoded bodies with `a[b]` and `a[0][b]` keys,
query strings for GET and DELETE, `Authorization: Bearer sk_…`, `Idempotency-Key`), answers
with the JSON objects the SDK expects, and records everything it receives. Like Stripe, it
counts a meter event's `identifier` once and answers a repeated `Idempotency-Key` with the
first answer. Tests can make it fail:

    stripe.outage()                 # every call answers 503 until stripe.recover()
    stripe.outage(calls=3)          # the next 3 calls answer 503
    stripe.lose_answers(calls=2)    # the next 2 calls are carried out, but answered with 503
                                    # (the client cannot know they worked, and retries)
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

SECRET_KEY = "sk_test_standin_0123456789"
PARAMS = web.RequestKey("params", dict)


@dataclass
class Received:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int = 0


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` pairs into nested dicts and lists, as Stripe reads them."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if last:
                    node[index] = value
                else:
                    if node[index] is None:
                        node[index] = [] if parts[i + 1].isdigit() else {}
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    if part not in node:
                        node[part] = [] if parts[i + 1].isdigit() else {}
                    node = node[part]
    return root


def _error(status: int, kind: str, message: str, code: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if code:
        body["error"]["code"] = code
    return web.json_response(body, status=status)


@dataclass
class StripeStandIn:
    requests: list[Received] = field(default_factory=list)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Accepted meter events by identifier: each identifier counts once, as at Stripe."""
    meter_posts: list[dict[str, Any]] = field(default_factory=list)
    """Every meter event request that reached the handler, repeats included."""
    checkout_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    portal_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    secret_key: str = SECRET_KEY
    port: int = 0
    _outage_calls: int | None = 0
    """None: down until recover(); n > 0: the next n calls fail; 0: up."""
    _lost_answers: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _idempotent: dict[str, tuple[int, dict]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> StripeStandIn:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(
            [
                web.post("/v1/customers", self.create_customer),
                web.post("/v1/customers/{id}", self.update_customer),
                web.delete("/v1/customers/{id}", self.delete_customer),
                web.post("/v1/billing/meter_events", self.create_meter_event),
                web.post("/v1/checkout/sessions", self.create_checkout_session),
                web.post("/v1/billing_portal/sessions", self.create_portal_session),
                web.get("/v1/subscriptions", self.list_subscriptions),
                web.delete("/v1/subscriptions/{id}", self.cancel_subscription),
                web.get("/v1/invoices", self.list_invoices),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test controls ---------------------------------------------------------------

    def outage(self, calls: int | None = None) -> None:
        """Answer 503 to every call (until `recover`), or to the next `calls` calls."""
        self._outage_calls = calls

    def recover(self) -> None:
        self._outage_calls = 0
        self._lost_answers = 0

    def lose_answers(self, calls: int) -> None:
        """Carry out the next `calls` calls but answer them with 503, as when an answer is lost on the way."""
        self._lost_answers = calls

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_standin{next(self._ids):06d}"

    def add_subscription(self, customer: str, price: str, status: str = "active", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        sub = {
            "id": self.new_id("sub"),
            "object": "subscription",
            "customer": customer,
            "status": status,
            "items": {
                "object": "list",
                "data": [{"id": self.new_id("si"), "object": "subscription_item", "price": {"id": price, "object": "price"},
                          "current_period_start": now, "current_period_end": now + 30 * 86400}],
            },
            "metadata": {},
            "created": now,
            **extra,
        }
        self.subscriptions[sub["id"]] = sub
        return sub

    def add_invoice(self, customer: str, amount_paid: int, currency: str = "usd", status: str = "paid", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        invoice = {
            "id": self.new_id("in"),
            "object": "invoice",
            "customer": customer,
            "number": f"NOOR-{len(self.invoices) + 1:04d}",
            "status": status,
            "currency": currency,
            "amount_due": amount_paid,
            "amount_paid": amount_paid,
            "total": amount_paid,
            "created": now + len(self.invoices),
            "period_start": now - 30 * 86400,
            "period_end": now,
            "hosted_invoice_url": f"https://invoice.stripe.test/i/{len(self.invoices) + 1}",
            **extra,
        }
        self.invoices.append(invoice)
        return invoice

    def calls(self, method: str, path_prefix: str) -> list[Received]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def meter_total(self, customer: str) -> int:
        return sum(int(e["payload"]["value"]) for e in self.meter_events.values() if e["payload"]["stripe_customer_id"] == customer)

    # -- plumbing ----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.method in ("GET", "DELETE"):
            params = nest(list(request.query.items()))
        else:
            params = nest(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        record = Received(request.method, request.path, params, request.headers.get("Idempotency-Key"))
        self.requests.append(record)
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            record.status = 401
            return _error(401, "invalid_request_error", "Invalid API Key provided.")
        if self._outage_calls is None or self._outage_calls > 0:
            if self._outage_calls:
                self._outage_calls -= 1
            record.status = 503
            return _error(503, "api_error", "The stand-in is having an outage.")
        key = record.idempotency_key
        if key and key in self._idempotent:
            status, body = self._idempotent[key]
            record.status = status
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        request[PARAMS] = params
        response = await handler(request)
        if key and isinstance(response, web.Response) and response.status < 500:
            import json

            self._idempotent[key] = (response.status, json.loads(response.body))  # type: ignore[arg-type]
        if self._lost_answers > 0:
            self._lost_answers -= 1
            record.status = 503
            return _error(503, "api_error", "The answer was lost on the way.")
        record.status = response.status
        return response

    # -- customers ---------------------------------------------------------------------

    async def create_customer(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        customer = {
            "id": self.new_id("cus"),
            "object": "customer",
            "email": params.get("email"),
            "metadata": params.get("metadata") or {},
            "created": int(time.time()),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return web.json_response(customer)

    async def update_customer(self, request: web.Request) -> web.Response:
        customer = self.customers.get(request.match_info["id"])
        if customer is None or customer.get("deleted"):
            return _error(404, "invalid_request_error", "No such customer", "resource_missing")
        for name in ("email",):
            if name in request[PARAMS]:
                customer[name] = request[PARAMS][name]
        return web.json_response(customer)

    async def delete_customer(self, request: web.Request) -> web.Response:
        customer = self.customers.get(request.match_info["id"])
        if customer is None or customer.get("deleted"):
            return _error(404, "invalid_request_error", "No such customer", "resource_missing")
        customer["deleted"] = True
        for sub in self.subscriptions.values():  # as at Stripe: deleting a customer cancels its subscriptions
            if sub["customer"] == customer["id"]:
                sub["status"] = "canceled"
        return web.json_response({"id": customer["id"], "object": "customer", "deleted": True})

    # -- meter events ----------------------------------------------------------------------

    async def create_meter_event(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        payload = params.get("payload") or {}
        if not params.get("event_name") or "stripe_customer_id" not in payload or "value" not in payload:
            return _error(400, "invalid_request_error", "Missing event_name or payload.", "parameter_missing")
        customer = self.customers.get(payload["stripe_customer_id"])
        if customer is None or customer.get("deleted"):
            return _error(400, "invalid_request_error", "No such customer", "resource_missing")
        event = {
            "object": "billing.meter_event",
            "created": int(time.time()),
            "event_name": params["event_name"],
            "identifier": params.get("identifier") or self.new_id("mev"),
            "livemode": False,
            "payload": payload,
            "timestamp": int(params.get("timestamp") or time.time()),
        }
        self.meter_posts.append(event)
        self.meter_events.setdefault(event["identifier"], event)  # a repeated identifier is counted once
        return web.json_response(self.meter_events[event["identifier"]])

    # -- checkout and portal ------------------------------------------------------------------

    async def create_checkout_session(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        if params.get("mode") != "subscription" or not params.get("line_items") or not params.get("success_url"):
            return _error(400, "invalid_request_error", "mode, line_items and success_url are required.", "parameter_missing")
        session_id = self.new_id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "customer": params.get("customer"),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {},
            "line_items_sent": params.get("line_items"),
            "subscription_data_sent": params.get("subscription_data"),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "status": "open",
            "payment_status": "unpaid",
            "expires_at": int(time.time()) + 86400,
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
        }
        self.checkout_sessions[session_id] = session
        return web.json_response(session)

    async def create_portal_session(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        if not params.get("customer"):
            return _error(400, "invalid_request_error", "customer is required.", "parameter_missing")
        session_id = self.new_id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "url": f"https://billing.stripe.test/p/session/{session_id}",
        }
        self.portal_sessions[session_id] = session
        return web.json_response(session)

    # -- subscriptions and invoices --------------------------------------------------------------

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        subs = [s for s in self.subscriptions.values() if s["customer"] == params.get("customer")]
        if params.get("status", "active") != "all":
            subs = [s for s in subs if s["status"] == params.get("status", "active")]
        return web.json_response({"object": "list", "url": "/v1/subscriptions", "has_more": False, "data": subs})

    async def cancel_subscription(self, request: web.Request) -> web.Response:
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _error(404, "invalid_request_error", "No such subscription", "resource_missing")
        sub["status"] = "canceled"
        return web.json_response(sub)

    async def list_invoices(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        limit = int(params.get("limit", 10))
        mine = sorted((i for i in self.invoices if i["customer"] == params.get("customer")), key=lambda i: -i["created"])
        return web.json_response({"object": "list", "url": "/v1/invoices", "has_more": len(mine) > limit, "data": mine[:limit]})
