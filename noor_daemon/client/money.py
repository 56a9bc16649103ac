"""Spend and prices: what each account, key or model cost this day or month, and what each model costs now.

Amounts are floats in the daemon's currency (`currency`), estimates from the price table in effect when
each call was metered; the daemon keeps them exactly (picounits), so sums here may differ in the last digit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .models import _from_json


@dataclass(frozen=True)
class SpendLine:
    """One account, key or model of a period (the field named by `Spend.by` is set, the others are None)."""

    requests: int
    tokens: int
    cost: float
    unpriced_calls: int
    """Calls that used tokens of a model nobody priced: the cost leaves them out."""
    budget: float | None
    budget_left: float | None
    account: str | None = None
    key: str | None = None
    model: str | None = None
    email: str | None = None
    prefix: str | None = None

    @property
    def label(self) -> str:
        return self.email or self.prefix or self.model or self.account or self.key or "(none)"


@dataclass(frozen=True)
class Spend:
    period: str
    start: str
    end: str
    by: str
    currency: str
    total: float
    data: list[SpendLine]
    note: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spend:
        return cls(**{**data, "data": [_from_json(SpendLine, line) for line in data["data"]]})  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelPrice:
    """A configured model on one of its routes, priced per million tokens (None: nobody priced it)."""

    model: str
    provider: str
    upstream_model: str
    source: str | None
    """table (the shipped price table), config ([prices]), local (a provider on this machine), None."""
    input_per_million: float | None
    output_per_million: float | None
    cached_input_per_million: float | None
    cache_write_per_million: float | None


@dataclass(frozen=True)
class Prices:
    table_compiled: str
    """When the shipped price table was compiled: prices change, check it against the providers' pages."""
    table_currency: str
    currency: str
    data: list[ModelPrice]
    budgets: list[str]

    @property
    def unpriced(self) -> list[ModelPrice]:
        return [p for p in self.data if p.source is None]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prices:
        return cls(**{**data, "data": [_from_json(ModelPrice, line) for line in data["data"]]})  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
