"""The client's answers about accounts, keys, usage totals, health and exports, with their parsers.

Every answer is a frozen dataclass built from the daemon's JSON here, beside its definition, so
the clients stay plain HTTP and tests/test_client_openapi.py can hold each model against the
admin API's OpenAPI document. Parsers ignore fields a newer daemon may add.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

_T = TypeVar("_T")


def _from_json(cls: type[_T], data: dict[str, Any]) -> _T:
    """Build a dataclass from JSON, ignoring fields a newer daemon may add."""
    return cls(**{f.name: data.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    plan: str
    status: str
    created_at: str | None
    limits: dict[str, float] | None = None
    """The account's own limits and budgets (budgets in the currency), replacing its plan's."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: its display prefix only, never the secret or its hash."""

    id: str
    account_id: str
    prefix: str
    masked: str
    name: str | None
    models: list[str] | None
    limits: dict[str, Any] | None
    status: str
    state: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IssuedKey(KeyInfo):
    """A key just created or rotated: `key` is the full secret, shown this once."""

    key: str = field(default="", repr=False)
    previous_expires_at: str | None = None
    """After a rotation with a grace period: when the key it replaced stops working."""


@dataclass(frozen=True)
class ModelUsage:
    model: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    mean_latency_ms: float | None


@dataclass(frozen=True)
class UsageTotals:
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class UsageSummary:
    hours: int
    models: list[ModelUsage]
    totals: UsageTotals

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Health:
    status: str
    version: str | None
    simulator_only: bool | None
    limits: str | None = None
    """`local` (this daemon's own counts), `shared` (in Redis) or `fallback` (Redis configured, unreachable)."""
    storage: str | None = None
    """`sqlite` (the file in the data dir) or `postgresql` (shared by several daemons)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExportResult:
    path: str
    format: str
    events: int | None
    """The event count the daemon announced, None if it did not."""
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MeInfo:
    """What a key holder may see: its account, the key it used, and the account's keys (masked)."""

    account: Account
    key: KeyInfo
    api_keys: list[KeyInfo]


def _usage_summary(data: dict[str, Any]) -> UsageSummary:
    return UsageSummary(
        hours=data["hours"],
        models=[_from_json(ModelUsage, m) for m in data["models"]],
        totals=_from_json(UsageTotals, data["totals"]),
    )


def _me_info(data: dict[str, Any]) -> MeInfo:
    return MeInfo(
        account=_from_json(Account, data["account"]),
        key=_from_json(KeyInfo, data["key"]),
        api_keys=[_from_json(KeyInfo, k) for k in data.get("api_keys") or []],
    )
