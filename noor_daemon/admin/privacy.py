"""/admin/v1/privacy: data-rights requests with due dates, the retention job, policy versions."""

from __future__ import annotations

from aiohttp import web

from noor_daemon.admin import requests
from noor_daemon.admin.errors import bad_request
from noor_daemon.privacy.policies import PolicyRefused, parse_effective
from noor_daemon.privacy.requests import KINDS
from noor_daemon.state import PRIVACY

routes = web.RouteTableDef()

STATUSES = ("open", "completed", "cancelled", "all")


def _int_query(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"`{name}` must be a whole number.") from None
    if not lo <= value <= hi:
        raise bad_request(f"`{name}` must be between {lo} and {hi}.")
    return value


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


# -- requests ------------------------------------------------------------------------


@routes.get("/privacy/requests")
async def list_requests(request: web.Request) -> web.Response:
    service = request.config_dict[PRIVACY]
    status = request.query.get("status", "all")
    if status not in STATUSES:
        raise bad_request(f"`status` must be one of: {', '.join(STATUSES)}.")
    kind = request.query.get("kind")
    if kind is not None and kind not in KINDS:
        raise bad_request(f"`kind` must be one of: {', '.join(KINDS)}.")
    account = request.query.get("account")
    limit = _int_query(request, "limit", 100, 1, 1000)
    before = _int_query(request, "before", None, 1, 2**62)
    rows = await service.requests.list(
        status=None if status == "all" else status,
        account_id=await service.account_ref(account) if account else None,
        kind=kind,
        overdue=_flag(request, "overdue"),
        limit=limit or 100,
        before_id=before,
    )
    return web.json_response(
        {
            "data": rows,
            "next_before": rows[-1]["id"] if rows and len(rows) == limit else None,
            **await service.requests.counts(),
        }
    )


@routes.post("/privacy/requests")
async def record_request(request: web.Request) -> web.Response:
    """Record a request received another way (mail, in person): open, due in 30 days."""
    body = await requests.json_body(request)
    kind = body.get("kind")
    if kind not in KINDS:
        raise bad_request(f"`kind` must be one of: {', '.join(KINDS)}.")
    ref = body.get("account")
    if not isinstance(ref, str) or not ref:
        raise bad_request("`account` (an account id or email) is required.")
    service = request.config_dict[PRIVACY]
    account = await service.accounts.get_account(ref)
    note = requests.optional_str(body, "note", max_length=1000, multiline=True)
    if note is not None and len(note) > 500:
        raise bad_request("`note` is limited to 500 characters.")
    return web.json_response(await service.record_request(kind, account.id, note=note, actor="admin"), status=201)


@routes.get("/privacy/requests/{request_id}")
async def get_request(request: web.Request) -> web.Response:
    return web.json_response(await request.config_dict[PRIVACY].requests.get(_request_id(request)))


@routes.post("/privacy/requests/{request_id}/complete")
async def complete_request(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    note = requests.optional_str(body, "note", max_length=1000, multiline=True)
    service = request.config_dict[PRIVACY]
    return web.json_response(await service.complete_request(_request_id(request), note=note, actor="admin"))


def _request_id(request: web.Request) -> int:
    try:
        return int(request.match_info["request_id"])
    except ValueError:
        raise bad_request("A request id is a whole number.") from None


# -- retention -----------------------------------------------------------------------


@routes.get("/privacy/retention")
async def retention_status(request: web.Request) -> web.Response:
    return web.json_response(request.config_dict[PRIVACY].retention.status())


@routes.post("/privacy/retention/run")
async def retention_run(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise bad_request("`dry_run` must be true or false.")
    job = request.config_dict[PRIVACY].retention
    report = await job.preview() if dry_run else await job.run(actor="admin")
    return web.json_response(report)


# -- policy versions -------------------------------------------------------------------


@routes.get("/privacy/policies")
async def list_policies(request: web.Request) -> web.Response:
    return web.json_response(await request.config_dict[PRIVACY].policies.overview())


@routes.post("/privacy/policies")
async def publish_policy(request: web.Request) -> web.Response:
    body = await requests.json_body(request)
    effective = body.get("effective")
    if not isinstance(effective, str) or not effective:
        raise bad_request("`effective` (a date, YYYY-MM-DD) is required.")
    summary = requests.optional_str(body, "summary", max_length=2000, multiline=True)
    if not summary:
        raise bad_request("`summary` (what changes, in a sentence or two) is required.")
    material = body.get("material", True)
    notify = body.get("notify", True)
    if not isinstance(material, bool) or not isinstance(notify, bool):
        raise bad_request("`material` and `notify` must be true or false.")
    if material and not notify:
        raise bad_request("A material change must be announced: `notify` cannot be false.")
    url = requests.optional_str(body, "url", max_length=2000)
    if url is not None and not url.startswith(("https://", "http://")):
        raise bad_request("`url` must be an http(s) address.")
    policies = request.config_dict[PRIVACY].policies
    try:
        version = await policies.publish(
            effective_at=parse_effective(effective), summary=summary.strip(), material=material, url=url, notify=notify
        )
    except PolicyRefused as exc:
        raise bad_request(str(exc)) from None
    return web.json_response(version, status=201)
