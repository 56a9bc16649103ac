"""The admin API's one error shape: `{"error": {"status", "code", "message"}}`."""

from __future__ import annotations

from aiohttp import web


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "code": code, "message": message}}, status=status)


def bad_request(message: str) -> AdminError:
    return AdminError(400, "invalid_request", message)


def not_found(message: str) -> AdminError:
    return AdminError(404, "not_found", message)
