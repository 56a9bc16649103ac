"""Who may use the admin API, and how its failures are answered."""

from __future__ import annotations

import logging

from aiohttp import web

from noor_daemon.admin.errors import AdminError, error_response
from noor_daemon.domain.emails import InvalidEmail
from noor_daemon.tls import is_loopback
from noor_daemon.ledger.accounts import Conflict, NotFound
from noor_daemon.state import ADMIN_TOKEN_HASH, SETTINGS

log = logging.getLogger(__name__)

OPEN_PATHS = {"/admin/v1/openapi.json"}


@web.middleware
async def admin_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AdminError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except NotFound as exc:
        return error_response(404, "not_found", str(exc))
    except Conflict as exc:
        return error_response(409, "conflict", str(exc))
    except InvalidEmail as exc:
        return error_response(400, "invalid_request", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if "Allow" in exc.headers:  # a 405 names the methods that would work (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:  # never a traceback to the caller, never content in the log
        log.error("admin %s %s failed: %s", request.method, request.path, type(exc).__name__)
        return error_response(500, "internal_error", "The admin API failed; see the daemon's log.")


@web.middleware
async def admin_auth(request: web.Request, handler) -> web.StreamResponse:
    settings = request.config_dict[SETTINGS]
    if not is_loopback(request.remote):
        if not settings.config.config.server.admin_remote:
            raise AdminError(403, "forbidden", "The admin API answers loopback clients only ([server] admin_remote).")
        if not request.secure:  # admin_remote needs TLS (the config refuses it without); never a token in the clear
            raise AdminError(403, "forbidden", "The admin API answers remote clients over HTTPS only.")
    if request.path in OPEN_PATHS:
        return await handler(request)
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    matches = request.config_dict[ADMIN_TOKEN_HASH].matches(token)  # SHA-256 digests, compared in constant time
    if scheme.lower() != "bearer" or not matches:
        raise AdminError(401, "unauthorized", "Missing or wrong admin token (NOOR_ADMIN_TOKEN, or see `noor doctor`).")
    return await handler(request)

