"""Gateway errors, independent of wire format; each wire module renders them its own way."""

from __future__ import annotations

from dataclasses import dataclass, field

from noor_daemon.domain.names import is_model_name


@dataclass
class GatewayError(Exception):
    status: int
    kind: str
    """One of: invalid_request, authentication, permission, not_found, request_too_large,
    rate_limit, insufficient_quota, upstream, timeout, unavailable, overloaded."""
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.kind}: {self.message}"


def bad_request(message: str, *, code: str | None = None, param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request", message, code=code, param=param)


def bad_key(message: str = "Invalid API key. Keys look like sk-noor-…; check it was copied whole.") -> GatewayError:
    return GatewayError(401, "authentication", message, code="invalid_api_key")


def forbidden(message: str, *, code: str) -> GatewayError:
    return GatewayError(403, "permission", message, code=code)


def unknown_model(model: str) -> GatewayError:
    """A 404 that names the model only when it has a model name's shape (the caller's string is never echoed raw)."""
    named = f"The model `{model}`" if is_model_name(model) else "The model you asked for"
    return GatewayError(
        404,
        "not_found",
        f"{named} does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, "request_too_large", f"Request body is larger than the limit of {limit} bytes.", code="request_too_large")


def upstream_failed(provider: str, status: int, message: str) -> GatewayError:
    kind = {502: "upstream", 503: "unavailable", 504: "timeout"}.get(status, "upstream")
    return GatewayError(status, kind, f"Upstream provider {provider!r}: {message}", code=kind)
