"""Which forward proxy a provider's calls go through, and with which credentials.

A provider's own `proxy` wins. Otherwise, with `[server] trust_env` (the default), the standard
variables decide as curl and the SDKs read them: HTTPS_PROXY for an https:// base URL, HTTP_PROXY
for http://, ALL_PROXY for either, and the hosts NO_PROXY names go direct. It is decided when the
config is loaded (start, reload), so the request path only reads the outcome; health probes and
`noor doctor` read the same outcome.
"""

from __future__ import annotations

import base64
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from noor_daemon.config import ConfigError, ProviderConfig
from noor_daemon.gateway.http1 import ProxyEndpoint
from noor_daemon.secret_store import SecretBackend, resolve

_VARIABLES = {"https": ("HTTPS_PROXY", "ALL_PROXY"), "http": ("HTTP_PROXY", "ALL_PROXY")}


@dataclass(frozen=True)
class Egress:
    """How a provider is reached: directly, or through `proxy`; `source` says what decided it."""

    proxy: ProxyEndpoint | None
    source: str
    """`direct`, `NO_PROXY`, `config` (the provider's `proxy`) or the variable's name (`HTTPS_PROXY`)."""
    credentials: str | None = None
    """Where the proxy's credentials come from (`keyring:NAME`, `HTTPS_PROXY`), never the credentials."""

    @property
    def proxy_url(self) -> str | None:
        """The proxy as `http://host:port`: never a user name or a password."""
        if self.proxy is None:
            return None
        host = f"[{self.proxy.host}]" if ":" in self.proxy.host else self.proxy.host
        return f"http://{host}:{self.proxy.port}"

    def describe(self) -> str:
        """One line for `noor doctor`."""
        if self.proxy is None:
            return "direct (its host is in NO_PROXY)" if self.source == "NO_PROXY" else "direct"
        origin = "its own proxy setting" if self.source == "config" else self.source
        credentials = f", credentials from {self.credentials}" if self.credentials else ""
        return f"through {self.proxy_url} ({origin}{credentials})"


DIRECT = Egress(None, "direct")


def egress_for(provider: ProviderConfig, trust_env: bool, backend: SecretBackend | None = None) -> Egress:
    """The way out for `provider`. Raises ConfigError for an unusable proxy variable and SecretError
    for a credential reference that cannot be resolved."""
    if provider.kind == "simulator" or not provider.base_url:
        return DIRECT
    if provider.proxy is not None:
        return _configured(provider, backend)
    if not trust_env:
        return DIRECT
    target = urlsplit(provider.base_url)
    scheme = target.scheme.lower()
    found = urllib.request.getproxies_environment()  # lower-case names win, as curl reads them
    host = target.hostname or ""
    port = target.port or (443 if scheme == "https" else 80)
    if found.get("no") and urllib.request.proxy_bypass_environment(f"{host}:{port}", found):
        return Egress(None, "NO_PROXY")
    for variable in _VARIABLES.get(scheme, ()):
        value = found.get(variable.split("_")[0].lower())
        if value:
            return _from_environment(variable, value)
    return DIRECT


def _configured(provider: ProviderConfig, backend: SecretBackend | None) -> Egress:
    assert provider.proxy is not None
    parts = urlsplit(provider.proxy)
    what = f"provider {provider.name!r} proxy"
    credentials = None
    authorization = None
    if provider.proxy_auth is not None:  # the secret holds user:password
        secret = resolve(provider.proxy_auth, what=f"{what}_auth", backend=backend) or ""
        authorization = _basic(*_split_credentials(secret, f"{what}_auth ({provider.proxy_auth})"))
        credentials = provider.proxy_auth
    elif parts.username is not None:  # http://user:keyring:NAME@host:port
        password = ""
        if parts.password is not None:
            password = resolve(parts.password, what=f"{what} password", backend=backend) or ""
            credentials = parts.password
        authorization = _basic(unquote(parts.username), password)
    assert parts.hostname is not None and parts.port is not None  # checked by the config's validator
    return Egress(ProxyEndpoint(parts.hostname, parts.port, authorization), "config", credentials)


def _from_environment(variable: str, value: str) -> Egress:
    if "://" not in value:
        value = f"http://{value}"  # `proxy.internal:3128`, as curl accepts it
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{variable}: not a proxy URL") from None
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ConfigError(
            f"{variable}: only http:// forward proxies are supported (HTTPS to the provider goes through them with "
            f"CONNECT); set [server] trust_env = false to ignore the variable"
        )
    authorization = None
    credentials = None
    if parts.username is not None:
        authorization = _basic(unquote(parts.username), unquote(parts.password or ""))
        credentials = variable
    return Egress(ProxyEndpoint(parts.hostname, port or 80, authorization), variable, credentials)


def _split_credentials(secret: str, what: str) -> tuple[str, str]:
    user, colon, password = secret.partition(":")
    if not colon or not user:
        raise ConfigError(f"{what}: the secret must be user:password")
    return user, password


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
