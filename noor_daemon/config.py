"""The TOML config schema.

One file holds providers, model routes, plans, retention and server settings. Errors are
reported with the file, the line and the key, because a user editing TOML by hand needs
to know where to look, not a pydantic traceback.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from noor_daemon import paths, presets


class ConfigError(Exception):
    """A config file that cannot be used; the message is meant for a person."""


class _Misreference(ValueError):
    """A value naming something that is not there; `loc` is where that value sits, for the line number."""

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


_SECRET_REFERENCE = r"(keyring|env):[A-Za-z0-9_.\-]+"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Requests larger than this are refused with 413 before they are read."""
    admin_remote: bool = False
    metrics_remote: bool = False
    """`/metrics` answers loopback clients only unless this is true; then only over TLS, and with `metrics_token`
    (when set) as a bearer token from anyone not on this machine."""
    metrics_token: str | None = None
    """A secret reference (`keyring:NAME`, `env:VAR`) for `/metrics` scrapers from the network."""
    """Answer the admin API to non-loopback clients (requires TLS)."""
    tls_cert: str | None = None
    tls_key: str | None = None
    shutdown_timeout: float = Field(30.0, ge=0)
    """On SIGTERM, how long running calls and streams may take to finish."""
    max_header_bytes: int = Field(16384, ge=1024)
    """Longest request line or header field accepted; longer ones get 431/400 before any work."""
    max_headers: int = Field(100, ge=8)
    client_write_timeout: float = Field(60.0, gt=0)
    """A client that reads nothing for this long is cut off, so slow readers cannot pin a stream."""
    trust_env: bool = True
    """Providers without their own `proxy` go through HTTPS_PROXY / HTTP_PROXY (ALL_PROXY), except the
    hosts NO_PROXY names, as curl and the SDKs do; false ignores those variables."""

    @field_validator("metrics_token")
    @classmethod
    def _token_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(keyring|env):[A-Za-z0-9_.\-]+", value):
            raise ValueError("must be a secret reference like 'keyring:metrics' or 'env:NOOR_METRICS_TOKEN', never the token itself")
        return value

    @model_validator(mode="after")
    def _tls(self) -> "ServerConfig":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both to serve HTTPS, or neither")
        if self.admin_remote and self.tls_cert is None:
            raise ValueError(
                "admin_remote = true needs TLS: set tls_cert and tls_key (`noor tls self-signed` makes a pair), "
                "or leave the admin API on loopback"
            )
        if self.metrics_remote and self.tls_cert is None:
            raise ValueError(
                "metrics_remote = true needs TLS: set tls_cert and tls_key, or scrape /metrics from this machine"
            )
        return self


class ProviderConfig(_Section):
    name: str = Field(min_length=1)
    kind: presets.KindName
    """A protocol (openai, anthropic, azure, simulator) or a preset of an OpenAI-compatible server
    (ollama, vllm, llamacpp, lmstudio, openrouter, groq, mistral, deepseek, gemini): see `presets.py`."""
    base_url: str | None = None
    """Default: the kind's (a local server's usual port, a service's API); azure needs its resource's URL."""
    formats: list[presets.Format] | None = None
    """The API formats this provider serves (chat, responses, messages, count_tokens, completions,
    embeddings); default: its kind's. Calls in another of chat/responses/messages are translated."""
    api_version: str | None = None
    """Azure only: the `api-version` of deployment URLs (default 2024-10-21), or "v1" for Azure's
    /openai/v1 API (the model named in the body, the Responses API served)."""
    default_max_tokens: int = Field(4096, ge=1)
    """Anthropic Messages requires max_tokens: a call translated to it without one asks for this many."""
    api_key: str | None = None
    """A secret reference: `keyring:NAME` or `env:VAR`; never the secret itself."""
    connect_timeout: float = Field(10.0, gt=0)
    first_byte_timeout: float = Field(120.0, gt=0)
    idle_timeout: float = Field(120.0, gt=0)
    latency_scale: float = Field(1.0, ge=0)
    """Simulator only: 1.0 streams at a realistic pace, 0 answers at once."""
    ca_bundle: str | None = None
    """A PEM file of CA certificates to trust for this provider instead of the system's (a LAN server's own CA)."""
    proxy: str | None = None
    """A forward proxy for this provider's calls, `http://host:port` (HTTPS goes through it with CONNECT,
    verified end to end); it wins over HTTPS_PROXY and NO_PROXY. A user name may be in the URL with a
    password reference after it: `http://alice:keyring:corp-proxy@proxy.internal:3128`."""
    proxy_auth: str | None = None
    """The proxy's credentials as a secret reference (`keyring:NAME`, `env:VAR`) holding `user:password`."""
    max_connections: int = Field(100, ge=1, le=10_000)
    """Connections open to this provider at most; more calls wait for a free one within connect_timeout."""
    keepalive_expiry: float = Field(4.0, ge=0)
    """Seconds an idle connection is kept for reuse: below the common server idle timeouts (uvicorn,
    Node and llama.cpp close after 5 s), so the server seldom closes one as it is reused; a shorter
    `Keep-Alive: timeout=N` from the server wins. 0: a new connection per call."""

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a proxy URL ({exc})") from None
        if parts.scheme.lower() != "http" or not parts.hostname:
            raise ValueError("must be http://host:port (the proxy itself is spoken to in plain HTTP; "
                             "HTTPS to the provider goes through it with CONNECT)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be http://host:port, without a path")
        if port is None:
            raise ValueError("needs a port, e.g. http://proxy.internal:3128")
        password = parts.password
        if password is not None and not re.fullmatch(_SECRET_REFERENCE, password):
            raise ValueError("a password in the proxy URL must be a secret reference "
                             "(http://user:keyring:NAME@host:port), never the password itself; or use proxy_auth")
        return value

    @field_validator("proxy_auth")
    @classmethod
    def _proxy_auth_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(_SECRET_REFERENCE, value):
            raise ValueError("must be a secret reference like 'keyring:corp-proxy' (holding user:password), never the credentials themselves")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _loadable_bundle(cls, value: str | None) -> str | None:
        if value is not None:
            import ssl

            try:
                ssl.create_default_context(cafile=os.path.expanduser(value))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load CA bundle {value}: {getattr(exc, 'strerror', None) or exc}") from None
        return value

    @field_validator("api_key")
    @classmethod
    def _must_be_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(keyring|env):[A-Za-z0-9_.\-]+", value):
            raise ValueError("must be a secret reference like 'keyring:openai' or 'env:OPENAI_API_KEY', never the key itself")
        return value

    @model_validator(mode="after")
    def _default_base_url(self) -> "ProviderConfig":
        if self.proxy_auth is not None and self.proxy is None:
            raise ValueError("proxy_auth needs proxy (credentials for HTTPS_PROXY go in that variable's URL)")
        if self.proxy_auth is not None and "@" in (self.proxy or ""):
            raise ValueError("credentials twice: in the proxy URL and in proxy_auth; keep one")
        kind = presets.KINDS[self.kind]
        if self.base_url is None and kind.protocol != "simulator":
            if kind.base_url is None:
                raise ValueError(f"kind = {self.kind!r} needs base_url (e.g. https://RESOURCE.openai.azure.com)")
            object.__setattr__(self, "base_url", kind.base_url)
        if self.api_version is not None and kind.protocol != "azure":
            raise ValueError("api_version is for kind = \"azure\" only")
        if self.formats is None:
            formats = list(kind.formats)
            if kind.protocol == "azure" and self.api_version == "v1":
                formats.append("responses")
            object.__setattr__(self, "formats", formats)
        elif not self.formats:
            raise ValueError("formats must name at least one format")
        return self

    @property
    def protocol(self) -> presets.Protocol:
        """How the provider is spoken to: a preset is the openai protocol with its own defaults."""
        return presets.KINDS[self.kind].protocol


class RouteConfig(_Section):
    provider: str
    model: str | None = None
    """The name the provider knows the model by; default: the name the client sent."""
    weight: float = Field(1.0, gt=0)
    """For `strategy = "weighted"`: this route's share of the traffic."""
    priority: int = 0
    """For `strategy = "priority"`: lower goes first; the others are fallbacks."""


class ModelConfig(_Section):
    name: str = Field(min_length=1)
    """The name clients send; may end in `*` ("gpt-*") to match a family of names."""
    routes: list[RouteConfig] = Field(min_length=1)
    strategy: Literal["priority", "weighted", "latency"] = "priority"
    aliases: list[str] = Field(default_factory=list)
    """Other names clients may send for this model."""


class RoutingConfig(_Section):
    max_attempts: int = Field(3, ge=1, le=10)
    """Routes tried for one call (the first plus fallbacks), while nothing was sent to the client."""
    total_deadline: float = Field(120.0, gt=0)
    """Seconds from arrival after which no further route is tried."""
    breaker_failures: int = Field(5, ge=1)
    """Consecutive failures that open a route's circuit breaker."""
    breaker_cooldown: float = Field(30.0, gt=0)
    """Seconds an open breaker waits before letting one probe call through."""
    health_check_interval: float = Field(0.0, ge=0)
    """Seconds between active health checks of open routes; 0 turns them off."""


class LedgerConfig(_Section):
    fail_open: bool = False
    """When the ledger cannot be written (disk full, locked): false answers 503 rather than
    serve unmetered calls; true serves them and keeps their rows in memory until it can."""


class StorageConfig(_Section):
    url: str | None = Field(None, pattern=r"^postgres(ql)?://")
    """`postgresql://user@host/db`: the ledger, accounts and keys in PostgreSQL, shared by several
    daemons; unset keeps them in the SQLite file under the data dir (the default). A password is best
    left out of the file (`PGPASSWORD`, `~/.pgpass`)."""
    pool_size: int = Field(10, ge=2, le=200)
    """Connections each daemon keeps open to PostgreSQL."""


class LimitsConfig(_Section):
    redis_url: str | None = Field(None, pattern=r"^rediss?://")
    """`redis://host:6379/0`: rate-limit, concurrency and quota counters shared by every daemon using
    it, so N daemons together let through no more than one limit. Unset: counted in this process."""
    redis_timeout: float = Field(0.25, gt=0)
    """Seconds a call waits for Redis before this daemon counts on its own (and says so)."""
    redis_prefix: str = Field("noor:", pattern=r"^[^\s]*$", max_length=64)
    """Prefix of every key NoorAPI writes in Redis, so several deployments can share one server."""


class PlanConfig(_Section):
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    concurrent_requests: int | None = Field(None, ge=1)
    requests_per_day: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)
    tokens_per_month: int | None = Field(None, ge=1)
    budget_per_day: float | None = Field(None, gt=0)
    """Most this plan's account may spend in a UTC day, in the configured currency (costs from `noor prices`)."""
    budget_per_month: float | None = Field(None, gt=0)
    """Most this plan's account may spend in a calendar month, in the configured currency."""
    allowed_models: list[str] | None = None


class AbuseConfig(_Section):
    auth_failure_threshold: int = Field(20, ge=1)
    """Failed authentications from one address within the window before it cools off."""
    auth_failure_window: float = Field(60.0, gt=0)
    cooloff_seconds: float = Field(300.0, gt=0)
    exempt_loopback: bool = True
    """Never lock out 127.0.0.1/::1, so one broken local script cannot lock out a team."""
    spike_factor: float = Field(10.0, gt=1)
    """Flag a key whose requests this minute exceed this multiple of its recent baseline…"""
    spike_min_requests: int = Field(120, ge=1)
    """…and this many requests in the minute."""


class RetentionConfig(_Section):
    usage_days: int = Field(90, ge=1)


class SmtpConfig(_Section):
    """Transactional mail over SMTP. Without an `[smtp]` section mail goes to a Maildir in the data dir."""

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    """Default: 465 with `security = "tls"`, 587 with "starttls", 25 with "none"."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    """A secret reference: `keyring:NAME` or `env:VAR`; never the password itself."""
    from_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    timeout: float = Field(30.0, gt=0)

    @field_validator("password")
    @classmethod
    def _password_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(keyring|env):[A-Za-z0-9_.\-]+", value):
            raise ValueError("must be a secret reference like 'keyring:smtp' or 'env:SMTP_PASSWORD', never the password itself")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> "SmtpConfig":
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.password is not None and self.security == "none" and self.host not in ("localhost", "127.0.0.1", "::1"):
            raise ValueError('sending a password with security = "none" is allowed to a loopback host only')
        return self


class SecretsConfig(_Section):
    """Where `keyring:NAME` references are looked up (see SECURITY.md)."""

    backend: Literal["keyring", "file"] = "keyring"
    """"keyring": the OS keyring. "file": a 0600 JSON file, for headless servers without a keyring."""
    file: str | None = None
    """For backend = "file": the secrets file [default: DATA_DIR/secrets.json]."""


class PriceConfig(_Section):
    """`[prices."MODEL"]`: what a model costs, overriding or adding to the price table NoorAPI ships
    (`noor prices`); a glob like "gpt-4o*" also works. In the configured currency, per million tokens."""

    input_per_million: float = Field(ge=0)
    """Price of a million prompt tokens."""
    output_per_million: float = Field(ge=0)
    """Price of a million completion tokens."""
    cached_input_per_million: float | None = Field(None, ge=0)
    """Price of a million prompt tokens read from the provider's prompt cache (default: the input price)."""
    cache_write_per_million: float | None = Field(None, ge=0)
    """Price of a million prompt tokens written to the provider's prompt cache (default: the input price)."""
    max_output: int | None = Field(None, ge=0)
    """The most a call can produce: a budget's worst case when a request sets no max_tokens."""



class BillingConfig(_Section):
    """`[billing]`: Stripe. Without this section nobody is charged and everything else works the same."""

    secret_key: str
    """A secret reference (`keyring:stripe-secret-key`, `env:STRIPE_SECRET_KEY`) to the Stripe secret key."""
    webhook_secret: str
    """A secret reference to the webhook endpoint's signing secret (`whsec_…`)."""
    meter_event_name: str = Field(min_length=1, max_length=100)
    """The `event_name` of the Stripe billing meter that usage is reported to."""
    meter_value: Literal["tokens", "requests", "cost"] = "tokens"
    """What one meter event counts: tokens (prompt + completion), successful requests, or cost (in the
    currency's smallest unit, e.g. cents, from each call's cost at the price table)."""
    meter_delay_seconds: int = Field(600, ge=0, le=86400)
    """An hour is reported this long after it ends, so calls still running at its end are in it."""
    prices: dict[str, str] = Field(default_factory=dict)
    """`[billing.prices]`: plan name = Stripe price id (`price_…`) of its subscription, for each paid plan."""
    usage_price: str | None = None
    """A metered Stripe price on the meter, added to every checkout (optional)."""
    free_plan: str | None = None
    """The plan an account returns to when its subscription ends or its grace period runs out; default: default_plan."""
    grace_days: float = Field(7, ge=0)
    """Days a failed payment leaves the paid plan in place before the account returns to the free plan."""
    api_base: str = Field("https://api.stripe.com", pattern=r"^https?://[^/\s]+")
    """Where the Stripe SDK sends its calls: Stripe itself, or stripe-mock / a stand-in for tests."""
    success_url: str = "http://127.0.0.1:8787/billing/done?session_id={CHECKOUT_SESSION_ID}"
    """Where Stripe Checkout sends the customer after paying."""
    cancel_url: str = "http://127.0.0.1:8787/billing/cancelled"
    """Where Stripe Checkout sends the customer who gives up."""
    return_url: str = "http://127.0.0.1:8787/billing/done"
    """Where the Stripe Customer Portal's "return" link leads."""

    @field_validator("secret_key", "webhook_secret")
    @classmethod
    def _stripe_secret_is_reference(cls, value: str) -> str:
        if not re.fullmatch(_SECRET_REFERENCE, value):
            raise ValueError(
                "must be a secret reference like 'keyring:stripe-secret-key' or 'env:STRIPE_SECRET_KEY', never the secret itself"
            )
        return value

    @field_validator("prices")
    @classmethod
    def _price_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for plan, price in value.items():
            if not re.fullmatch(r"price_[A-Za-z0-9_]+", price):
                raise ValueError(f"plan {plan!r}: {price!r} is not a Stripe price id (price_…)")
        return value


class BudgetsConfig(_Section):
    """`[budgets]`: the currency budgets are kept in, and who hears when a budget runs low."""

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    """Costs and budgets are in this currency. The price table NoorAPI ships is in USD: with another currency
    only the models `[prices]` names are priced."""
    alert_thresholds: list[int] = Field(default_factory=lambda: [50, 80, 100])
    """Percentages of a budget at which its account (and `alert_email`) is mailed, once per period each."""
    alert_email: str | None = None
    """An operator's address that receives every budget alert too."""
    webhook_url: str | None = Field(None, pattern=r"^https?://[^/\s]+")
    """A URL that receives every budget alert as JSON, signed with `webhook_secret` (`X-Noor-Signature`)."""
    webhook_secret: str | None = None
    """A secret reference (`keyring:NAME`, `env:VAR`) to the HMAC-SHA256 key that signs the webhook's body."""

    @field_validator("alert_thresholds")
    @classmethod
    def _percentages(cls, value: list[int]) -> list[int]:
        if any(not 1 <= v <= 100 for v in value):
            raise ValueError("thresholds are percentages from 1 to 100")
        return sorted(set(value))

    @field_validator("webhook_secret")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(_SECRET_REFERENCE, value):
            raise ValueError("must be a secret reference like 'keyring:budget-webhook' or 'env:NOOR_WEBHOOK_SECRET'")
        return value

    @model_validator(mode="after")
    def _signed(self) -> "BudgetsConfig":
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret: the receiver must be able to tell our alerts from forgeries")
        return self


class TelemetryConfig(_Section):
    """`[telemetry]`: OpenTelemetry traces and GenAI metrics over OTLP/HTTP (the `otel` extra). Absent: off."""

    endpoint: str = Field(pattern=r"^https?://[^/\s]+")
    """The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`); `/v1/traces` and `/v1/metrics` are added."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers of every export, each value a secret reference (`{ "x-honeycomb-team" = "env:HONEYCOMB_KEY" }`)."""
    service_name: str = Field("noorapi", min_length=1)
    traces: bool = True
    """A trace per call: the call, then auth, limits, route, upstream and meter."""
    metrics: bool = True
    """gen_ai.client.token.usage, gen_ai.client.operation.duration, gen_ai.server.time_to_first_token."""
    sample_ratio: float = Field(1.0, ge=0, le=1)
    """The share of calls traced (a caller's sampled `traceparent` is followed)."""
    export_interval: float = Field(10.0, gt=0)
    """Seconds between exports of spans and metrics."""
    hashed_ids: bool = False
    """Opt in to pseudonymous account and key ids on spans (a SHA-256 prefix); never the ids, never an email."""

    @field_validator("headers")
    @classmethod
    def _header_references(cls, value: dict[str, str]) -> dict[str, str]:
        for name, reference in value.items():
            if not re.fullmatch(_SECRET_REFERENCE, reference):
                raise ValueError(f"headers.{name} must be a secret reference like 'env:OTEL_TOKEN' or 'keyring:otel', never the value")
        return value


class Config(_Section):
    server: ServerConfig = ServerConfig()
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    plans: dict[str, PlanConfig] = Field(default_factory=dict)
    default_plan: str = "free"
    retention: RetentionConfig = RetentionConfig()
    abuse: AbuseConfig = AbuseConfig()
    routing: RoutingConfig = RoutingConfig()
    ledger: LedgerConfig = LedgerConfig()
    storage: StorageConfig = StorageConfig()
    limits: LimitsConfig = LimitsConfig()
    smtp: SmtpConfig | None = None
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    secrets: SecretsConfig = SecretsConfig()
    billing: BillingConfig | None = None
    telemetry: TelemetryConfig | None = None
    budgets: BudgetsConfig = BudgetsConfig()

    @model_validator(mode="after")
    def _cross_references(self) -> "Config":
        names = [p.name for p in self.providers]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _Misreference(f"provider name {name!r} is used twice", ("providers", index, "name"))
        for m, model in enumerate(self.models):
            for r, route in enumerate(model.routes):
                if route.provider not in names:
                    raise _Misreference(
                        f"model {model.name!r} routes to unknown provider {route.provider!r}",
                        ("models", m, "routes", r, "provider"),
                    )
        if self.plans and self.default_plan not in self.plans:
            raise _Misreference(
                f"default_plan {self.default_plan!r} is not one of the plans: {', '.join(self.plans)}", ("default_plan",)
            )
        if self.billing is not None:
            for plan in [*self.billing.prices, *([self.billing.free_plan] if self.billing.free_plan else [])]:
                if self.plan(plan) is None:
                    where = ("billing", "prices", plan) if plan in self.billing.prices else ("billing", "free_plan")
                    raise _Misreference(f"billing names unknown plan {plan!r}; plans: {', '.join(self.plan_names)}", where)
        return self

    def plan(self, name: str) -> PlanConfig | None:
        if not self.plans and name == "free":
            return PlanConfig()
        return self.plans.get(name)

    @property
    def plan_names(self) -> list[str]:
        return list(self.plans) or ["free"]

    @property
    def simulator_only(self) -> bool:
        """Every provider is the built-in simulator (whether or not a file was read): no call leaves this machine."""
        return all(p.kind == "simulator" for p in self.providers)


SIMULATOR_CONFIG = {
    "providers": [{"name": "simulator", "kind": "simulator"}],
    "models": [
        {"name": "sim-gpt", "routes": [{"provider": "simulator", "model": "sim-gpt"}]},
        {"name": "sim-claude", "routes": [{"provider": "simulator", "model": "sim-claude"}]},
        {"name": "sim-embed", "routes": [{"provider": "simulator", "model": "sim-embed"}]},
    ],
}
"""What a daemon with no config file serves: the built-in simulator, so it works offline."""


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path | None
    """None when no file existed and the simulator defaults are in use."""


def default_config_path() -> Path:
    return paths.config_dir() / "config.toml"


def load(path: str | os.PathLike[str] | None = None) -> LoadedConfig:
    """Load the config from `path`, `NOOR_CONFIG`, or the default location.

    An explicitly named file must exist; a missing default file means "simulator only".
    """
    file = config_file(path)
    if file is None:
        return LoadedConfig(Config.model_validate(SIMULATOR_CONFIG), None)
    return LoadedConfig(parse(file.read_text(encoding="utf-8"), str(file)), file)


def config_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The file in effect: `path`, `NOOR_CONFIG`, or the default location when it exists (None: no file)."""
    explicit = path or os.environ.get("NOOR_CONFIG")
    file = Path(explicit) if explicit else default_config_path()
    if not file.exists():
        if explicit:
            raise ConfigError(f"{file}: no such config file")
        return None
    return file


def server_settings(path: str | os.PathLike[str] | None = None) -> ServerConfig:
    """The `[server]` section of the file in effect, read alone: where the CLI finds the daemon even when
    another section of the file is being edited."""
    file = config_file(path)
    if file is None:
        return ServerConfig()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
        return ServerConfig.model_validate(data.get("server", {}))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"{file}: [server] cannot be read; `noor config check` says why") from exc


def parse(text: str, filename: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts the position at the end ("... (at line 3, column 7)"); lead with it as compilers do, so
        # an editor or a terminal can jump to FILE:LINE:COLUMN.
        found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc), re.DOTALL)
        if found:
            raise ConfigError(f"{filename}:{found[2]}:{found[3]}: {found[1]}") from None
        found = re.fullmatch(r"(.*) \(at end of document\)", str(exc), re.DOTALL)
        if found:  # an unclosed value: blame where the text ends, past any trailing blank lines
            last = text.rstrip().split("\n")
            raise ConfigError(f"{filename}:{len(last)}:{len(last[-1]) + 1}: {found[1]} (the file ends before it does)") from None
        raise ConfigError(f"{filename}: {exc}") from None
    if not data.get("providers") and not data.get("models"):
        data = {**SIMULATOR_CONFIG, **data}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, text, filename)) from None


def _describe(exc: ValidationError, text: str, filename: str) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _Misreference):
            loc = cause.loc
        key = ".".join(str(part) for part in loc) or "(top level)"
        line = locate(text, loc)
        where = f"{filename}:{line}" if line else filename
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {key}: {message}")
    return "\n".join(lines)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"']+)\s*=")


def locate(text: str, loc: tuple[object, ...]) -> int | None:
    """The 1-based line that best matches a pydantic error location.

    tomllib keeps no positions, so we replay the table headers: `[[providers]]` for the
    second time means ("providers", 1), and a key line under it extends that path.
    """
    best_line, best_len = None, 0
    table: tuple[object, ...] = ()
    array_counts: dict[tuple[object, ...], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            parts = tuple(p.strip().strip("\"'") for p in header.group(2).split("."))
            if header.group(1) == "[[":
                index = array_counts.get(parts, -1) + 1
                array_counts[parts] = index
                table = parts + (index,)
            else:
                table = parts
            path = table
        else:
            key = _KEY.match(raw)
            if not key:
                continue
            path = table + tuple(p.strip().strip("\"'") for p in key.group(1).split("."))
        matched = _common_prefix(path, loc)
        if matched > best_len or (matched == best_len and matched == len(path) and best_line is None):
            best_line, best_len = number, matched
    return best_line


def _common_prefix(path: tuple[object, ...], loc: tuple[object, ...]) -> int:
    if len(path) > len(loc):
        return 0
    for i, part in enumerate(path):
        if str(part) != str(loc[i]):
            return 0
    return len(path)
