"""Upstream providers behind one interface: calls on the app's keep-alive pool (`http1`), probes on its
ClientSession; both through the provider's forward proxy, if it has one (`egress`).

Each upstream knows the endpoints it serves (`formats`, from its kind or its config); a call in
another conversational format is translated by the proxy. A provider that answers 404 to a
format it was assumed to serve forgets it (`forget_format`) until the config is reloaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from noor_daemon.config import Config, ProviderConfig
from noor_daemon.domain import errors
from noor_daemon.gateway import http1
from noor_daemon.gateway.egress import DIRECT, Egress, egress_for
from noor_daemon.gateway.simulator import SimulatorUpstream
from noor_daemon.presets import AZURE_API_VERSION, CONVERSATION_FORMATS, FORMAT_PATHS
from noor_daemon.secret_store import resolve
from noor_daemon.tls import provider_ssl_context

# Client headers worth passing on; everything else (cookies, our own key) stays here.
_FORWARD_REQUEST_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")
# Retry-After travels with an upstream 429/503 so the caller's SDK backs off as the provider asked.
_FORWARD_RESPONSE_HEADERS = ("x-request-id", "request-id", "openai-processing-ms", "retry-after", "retry-after-ms")


class UpstreamReply(Protocol):
    status: int
    content_type: str
    headers: Mapping[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    def release(self) -> None: ...


class Upstream(Protocol):
    name: str
    kind: str
    formats: set[str]
    """The endpoints (under /v1) this provider serves as they are: `chat/completions`, `messages`, …"""
    secrets: tuple[str, ...]
    """Its credentials' literal values, removed from any error text of its that is relayed."""

    async def probe(self) -> bool: ...

    async def send(
        self, endpoint: str, body: bytes, client_headers: Mapping[str, str], deadline: float | None = None,
        model: str | None = None,
    ) -> UpstreamReply:
        """`deadline`: seconds left for the whole call; the wait for headers never exceeds it. `model`: the
        route's model name (an Azure deployment is part of the URL)."""
        ...

    def forget_format(self, endpoint: str) -> bool:
        """The provider answered 404 to `endpoint`: stop assuming it serves it, if another conversational
        format remains to translate to. True when it was forgotten."""
        ...


def serves_formats(config: ProviderConfig) -> set[str]:
    return {FORMAT_PATHS[name] for name in config.formats or ()}


def forget(formats: set[str], endpoint: str) -> bool:
    """`forget_format` for any upstream: a conversational format is dropped while another one remains."""
    conversational = {FORMAT_PATHS[f] for f in CONVERSATION_FORMATS}
    if endpoint not in formats or endpoint not in conversational or not (formats & conversational) - {endpoint}:
        return False
    formats.discard(endpoint)
    if endpoint == "messages":
        formats.discard("messages/count_tokens")
    return True


class HttpReply:
    """An upstream's answer as the proxy reads it, with transport failures in the gateway's terms."""

    __slots__ = ("_answer", "status", "content_type", "headers", "_provider")

    def __init__(self, answer: http1.Answer, provider: str) -> None:
        self._answer = answer
        self._provider = provider
        self.status = answer.status
        self.content_type = answer.content_type
        self.headers = {h: answer.headers[h] for h in _FORWARD_RESPONSE_HEADERS if h in answer.headers}

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.chunks():
                yield chunk
        except TimeoutError:
            raise errors.upstream_failed(self._provider, 504, "stream went idle") from None
        except ConnectionError as exc:
            raise errors.upstream_failed(self._provider, 502, f"stream broke: {_reason(exc)}") from None

    async def read(self) -> bytes:
        try:
            return await self._answer.read()
        except TimeoutError:
            raise errors.upstream_failed(self._provider, 504, "timed out reading the response") from None
        except ConnectionError as exc:
            raise errors.upstream_failed(self._provider, 502, f"response broke: {_reason(exc)}") from None

    def release(self) -> None:
        self._answer.release()


class HttpUpstream:
    """An OpenAI- or Anthropic-compatible HTTP provider."""

    def __init__(
        self, config: ProviderConfig, secret: str | None, session: aiohttp.ClientSession, pool: http1.Pool,
        egress: Egress = DIRECT,
    ) -> None:
        self.name = config.name
        self.kind = config.kind
        self.protocol = config.protocol
        self.config = config
        self.formats = serves_formats(config)
        self.secrets = (secret,) if secret else ()
        self.egress = egress
        self._session = session
        self._pool = pool
        self._probe_proxy: dict = {}
        """aiohttp's arguments for the same proxy (health probes take the path calls take)."""
        if egress.proxy is not None:
            self._probe_proxy["proxy"] = egress.proxy_url
            if egress.proxy.authorization:
                self._probe_proxy["proxy_headers"] = {"Proxy-Authorization": egress.proxy.authorization}
        self._base = (config.base_url or "").rstrip("/")
        self._auth: dict[str, str] = {}
        if secret:
            self._auth = self._credentials(secret)
        self._ssl = provider_ssl_context(config)  # True: the system trust store; or the provider's ca_bundle
        self._targets: dict[str, tuple[http1.Origin, str]] = {}
        """Each endpoint's origin and request target, parsed once."""
        self._fixed_headers = [("Content-Type", "application/json"), *self._auth.items()]

    def _credentials(self, secret: str) -> dict[str, str]:
        return {"x-api-key": secret} if self.protocol == "anthropic" else {"Authorization": f"Bearer {secret}"}

    def url(self, endpoint: str) -> str:
        if self.protocol == "anthropic":
            return f"{self._base}/v1/{endpoint}"
        return f"{self._base}/{endpoint}"

    def forget_format(self, endpoint: str) -> bool:
        return forget(self.formats, endpoint)

    async def probe(self) -> bool:
        """An active health check: does the provider answer its model list at all?"""
        headers = dict(self._auth)
        if self.protocol == "anthropic":
            headers["anthropic-version"] = "2023-06-01"
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                async with self._session.get(self.url("models"), headers=headers, ssl=self._ssl, **self._probe_proxy) as response:
                    await response.read()
                    return response.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def send(
        self, endpoint: str, body: bytes, client_headers: Mapping[str, str], deadline: float | None = None,
        model: str | None = None,
    ) -> UpstreamReply:
        target = self._targets.get(endpoint)
        if target is None:
            target = self._targets[endpoint] = self._target(self.url(endpoint))
        return await self._exchange(target, body, client_headers, deadline)

    def _target(self, url: str) -> tuple[http1.Origin, str]:
        config = self.config
        return self._pool.origin(
            url, self._ssl, provider=self.name, proxy=self.egress.proxy,
            max_connections=config.max_connections, keepalive=config.keepalive_expiry, trust=config.ca_bundle or "",
        )

    async def _exchange(
        self, target: tuple[http1.Origin, str], body: bytes, client_headers: Mapping[str, str], deadline: float | None
    ) -> UpstreamReply:
        origin, path = target
        headers = list(self._fixed_headers)
        for name in _FORWARD_REQUEST_HEADERS:
            value = client_headers.get(name)
            if value:
                headers.append((name, value))
        if self.protocol == "anthropic" and not client_headers.get("anthropic-version"):
            headers.append(("anthropic-version", "2023-06-01"))
        wait = self.config.first_byte_timeout
        by_deadline = deadline is not None and deadline < wait
        try:
            answer = await http1.post(  # one timer for both limits
                origin, path, headers, body, self.config.connect_timeout, self.config.idle_timeout,
                deadline if by_deadline else wait,
            )
        except TimeoutError:
            reason = "no answer before the call's deadline" if by_deadline else "no response before the first-byte timeout"
            raise errors.upstream_failed(self.name, 504, reason) from None
        except http1.PoolExhausted as exc:
            raise errors.upstream_failed(self.name, 503, str(exc)) from None
        except http1.UpstreamUnreachable as exc:
            raise errors.upstream_failed(self.name, 502, f"could not connect: {exc}") from None
        except ConnectionError as exc:
            raise errors.upstream_failed(self.name, 502, f"request failed: {_reason(exc)}") from None
        if answer.status == 407:  # a forward proxy's refusal of plain HTTP, not the provider's answer
            answer.release()
            raise errors.upstream_failed(self.name, 502, "the forward proxy asked for credentials (407); check its proxy_auth")
        return HttpReply(answer, self.name)


def _reason(exc: ConnectionError) -> str:
    """An error's message when it is one of the client's own (fixed text, nothing from the upstream), else its type."""
    return str(exc) if isinstance(exc, (http1.UpstreamBroke, http1.UpstreamUnreachable)) else type(exc).__name__


@dataclass(frozen=True)
class ProviderAccess:
    """What calling a provider takes besides its config: its API key and its way out."""

    api_key: str | None
    egress: Egress


def resolve_secrets(config: Config) -> dict[str, ProviderAccess]:
    """Every provider's API key (keyring or environment) and forward proxy with its credentials, resolved
    now so that a missing one stops the start or the reload. Raises `SecretError` or `ConfigError`."""
    return {
        p.name: ProviderAccess(resolve(p.api_key, what=f"provider {p.name!r} api_key"), egress_for(p, config.server.trust_env))
        for p in config.providers
    }


def build_upstreams(
    config: Config, secrets: dict[str, ProviderAccess], session: aiohttp.ClientSession, pool: http1.Pool
) -> dict[str, Upstream]:
    upstreams: dict[str, Upstream] = {}
    for provider in config.providers:
        if provider.kind == "simulator":
            upstreams[provider.name] = SimulatorUpstream(provider.name, provider.latency_scale)
        else:
            access = secrets[provider.name]
            cls = AzureUpstream if provider.protocol == "azure" else HttpUpstream
            upstreams[provider.name] = cls(provider, access.api_key, session, pool, access.egress)
    return upstreams


class AzureUpstream(HttpUpstream):
    """Azure OpenAI: the `api-key` header, and a deployment (the route's model) in the URL with an
    `api-version` query; or, with `api_version = "v1"`, the /openai/v1 API with the model in the body."""

    def __init__(self, config: ProviderConfig, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        self._version = config.api_version or AZURE_API_VERSION
        self._base = self._base.removesuffix("/openai/v1").removesuffix("/openai")
        self._by_deployment: dict[tuple[str, str | None], tuple[http1.Origin, str]] = {}

    def _credentials(self, secret: str) -> dict[str, str]:
        return {"api-key": secret}

    def url(self, endpoint: str, model: str | None = None) -> str:
        if self._version == "v1":
            return f"{self._base}/openai/v1/{endpoint}"
        if endpoint == "models":
            return f"{self._base}/openai/models?api-version={self._version}"
        return f"{self._base}/openai/deployments/{model}/{endpoint}?api-version={self._version}"

    async def send(
        self, endpoint: str, body: bytes, client_headers: Mapping[str, str], deadline: float | None = None,
        model: str | None = None,
    ) -> UpstreamReply:
        key = (endpoint, model)
        target = self._by_deployment.get(key)
        if target is None:
            target = self._by_deployment[key] = self._target(self.url(endpoint, model))
        return await self._exchange(target, body, client_headers, deadline)
