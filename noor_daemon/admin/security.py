"""/admin/v1: rotating the admin token, and revoking a leaked key by its prefix alone."""

from __future__ import annotations

import logging
from typing import NoReturn

from aiohttp import web

from noor_daemon.admin import requests
from noor_daemon.admin.errors import AdminError, bad_request, not_found
from noor_daemon.clock import iso
from noor_daemon.domain.api_keys import DISPLAY_PREFIX_LEN, KEY_PREFIX, display_prefix, hash_key, well_formed
from noor_daemon.domain.serialize import key_json, key_state
from noor_daemon.ledger.audit import AuditEntry
from noor_daemon.secret_store import SecretError
from noor_daemon.state import ACCOUNTS, ADMIN_TOKEN_HASH, AUDIT, SETTINGS

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

_NO_STORE = {"Cache-Control": "no-store"}


@routes.post("/admin-token/rotate")
async def rotate_admin_token(request: web.Request) -> web.Response:
    """A new admin token, in force at once (the one this request used stops working); shown this once."""
    verifier = request.config_dict[ADMIN_TOKEN_HASH]
    try:
        token = verifier.rotate()
    except SecretError as exc:
        raise AdminError(409, "conflict", str(exc)) from None
    except OSError as exc:
        raise AdminError(500, "internal_error", f"could not write the new token's hash ({type(exc).__name__})") from None
    now = request.config_dict[SETTINGS].clock.now()
    await request.config_dict[AUDIT].add(AuditEntry("admin.token_rotated", "admin", "admin_token", None))
    log.info("admin token rotated; the daemon now trusts %s", verifier.source)
    return web.json_response({"token": token, "rotated_at": iso(int(now * 1000)), "stored": verifier.source}, headers=_NO_STORE)


def _prefix(body: dict) -> str:
    value = body.get("prefix")
    if not isinstance(value, str) or not value.strip():
        raise bad_request("`prefix` (a key's display prefix, like sk-noor-AbC123) is required.")
    value = value.strip().rstrip("…").rstrip(".").rstrip("*")
    if not value.startswith(KEY_PREFIX) or len(value) < DISPLAY_PREFIX_LEN:
        raise bad_request(
            f"`prefix` must be a key's whole display prefix ({DISPLAY_PREFIX_LEN} characters, as `noor key list` shows: "
            f"{KEY_PREFIX}AbC123) or the key itself."
        )
    return value


@routes.route("*", "/keys/revoke-by-prefix")
async def revoke_by_prefix(request: web.Request) -> web.Response:
    """Revoke the one live key whose display prefix matches; refuse when several do.

    A full key is accepted too (and matched by its hash), for the moment a leak is found in a
    log or a repository and the key's id is not at hand.
    """
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    body = await requests.json_body(request)
    given = _prefix(body)
    store = request.config_dict[ACCOUNTS]
    now = int(request.config_dict[SETTINGS].clock.now() * 1000)
    candidates = [k for k in await store.list_keys() if k.prefix == display_prefix(given)]
    if len(given) > DISPLAY_PREFIX_LEN:
        if not well_formed(given):
            raise bad_request("That is longer than a display prefix but not a whole, well-formed key.")
        candidates = [k for k in candidates if k.key_hash == hash_key(given)]
    if not candidates:
        raise not_found(f"No key has the prefix {display_prefix(given)}.")
    live = [k for k in candidates if k.revoked_at is None]
    if len(live) > 1 or (not live and len(candidates) > 1):
        _ambiguous(live or candidates, now)
    if not live:
        return web.json_response({**key_json(candidates[0], now), "already_revoked": True})
    revoked = await store.revoke_key(live[0].id)
    return web.json_response({**key_json(revoked, now), "already_revoked": False})


def _ambiguous(keys: list, now: int) -> NoReturn:
    ids = ", ".join(f"{k.id} ({key_state(k, now)})" for k in keys)
    raise AdminError(
        409, "ambiguous_prefix", f"{len(keys)} keys share that prefix: {ids}. Revoke by id (`noor key revoke ID`) or give the whole key."
    )
