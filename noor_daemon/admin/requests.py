"""Reading and checking admin request bodies."""

from __future__ import annotations

import orjson
from aiohttp import web

from noor_daemon.admin.errors import bad_request
from noor_daemon.domain.emails import InvalidEmail
from noor_daemon.domain.emails import normalize as normalize_email
from noor_daemon.domain.names import bounded_text

async def json_body(request: web.Request) -> dict:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return body


def email(value: object) -> str:
    """A valid address, normalized (`domain.emails`): what an account may hold."""
    try:
        return normalize_email(value)
    except InvalidEmail as exc:
        raise bad_request(str(exc)) from None


def optional_str(body: dict, field: str, *, max_length: int = 200, multiline: bool = False) -> str | None:
    """A short caller-set text (a key's name, a reason, a note): bounded, NFC, no control or bidi characters."""
    value = body.get(field)
    if value is None:
        return None
    try:
        return bounded_text(value, field, max_length, multiline=multiline)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def string_list(body: dict, field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_request(f"`{field}` must be a list of strings.")
    return value
