"""Money: what a model costs, what a call cost, and amounts as text.

Prices come from the table NoorAPI ships (`prices.toml`, with the date it was compiled and where each
figure came from), overridden or extended by the config's `[prices]`; a provider running on this
machine or this network (a local Ollama, vLLM, llama.cpp or LM Studio, the simulator) is priced 0 unless
`[prices]` names its model. A cost is an exact integer of picounits (10⁻¹² of the currency): prices are
read as decimals, so tokens × price is exact and sums never drift as floats would.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources

from noor_daemon.config import Config, PriceConfig, ProviderConfig

DEFAULT_MAX_OUTPUT = 32_768
"""A budget's worst case for the output of a call that sets no max_tokens, to a model whose most is not known."""
UNIT = 10**12
"""Picounits per unit of the currency: the integer every cost is kept in."""
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}


def per_token(per_million: str | float | Decimal) -> int:
    """Picounits per token of a price per million tokens (exact for any price with up to 6 decimals)."""
    return int(Decimal(str(per_million)) * UNIT / 1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in picounits per token."""

    input: int
    output: int
    cached_input: int
    cache_write: int
    max_output: int | None = None
    source: str = "table"
    """`table` (the shipped price table), `config` (`[prices]`) or `local` (priced 0: runs on this network)."""

    def cost(self, prompt: int, completion: int, cached: int = 0, cache_write: int = 0) -> int:
        """A call's cost: `prompt` counts every prompt token, of which `cached` were read from the provider's
        cache and `cache_write` written to it."""
        plain = max(0, prompt - cached - cache_write)
        return plain * self.input + cached * self.cached_input + cache_write * self.cache_write + completion * self.output

    def worst_case(self, prompt_bound: int, max_tokens: int | None, default_output: int) -> int:
        """The most a call can cost: every prompt token at the full input price, and all the output it may write."""
        output = max_tokens if max_tokens is not None else (self.max_output if self.max_output is not None else default_output)
        return prompt_bound * max(self.input, self.cache_write) + output * self.output


FREE = Price(0, 0, 0, 0, source="local")


@dataclass(frozen=True)
class TableEntry:
    model: str
    provider: str
    price: Price
    source: str


@cache
def shipped_table() -> tuple[str, str, tuple[TableEntry, ...]]:
    """(compiled date, currency, entries in file order) of the price table in the package."""
    data = tomllib.loads(resources.files("noor_daemon.domain").joinpath("prices.toml").read_text(encoding="utf-8"))
    entries = []
    for provider in data["providers"]:
        for row in provider["models"]:
            price = Price(
                per_token(row["input"]), per_token(row["output"]),
                per_token(row.get("cached_input", row["input"])), per_token(row.get("cache_write", row["input"])),
                row.get("max_output"),
            )
            entries.append(TableEntry(row["model"], provider["name"], price, provider["source"]))
    return data["compiled"], data["currency"], tuple(entries)


def from_config(price: PriceConfig) -> Price:
    cached = price.cached_input_per_million if price.cached_input_per_million is not None else price.input_per_million
    write = price.cache_write_per_million if price.cache_write_per_million is not None else price.input_per_million
    return Price(per_token(price.input_per_million), per_token(price.output_per_million), per_token(cached), per_token(write),
                 price.max_output, source="config")


def _lookup(entries: list[tuple[str, object]], model: str) -> object | None:
    """The exact name first, then the first glob that matches."""
    for pattern, value in entries:
        if pattern == model:
            return value
    for pattern, value in entries:
        if any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(model, pattern):
            return value
    return None


LOCAL_KINDS = frozenset({"simulator", "ollama", "vllm", "llamacpp", "lmstudio"})
"""Provider kinds that run a model on hardware of one's own: nobody bills for their tokens."""


def is_local(provider: ProviderConfig) -> bool:
    """A provider whose tokens cost nothing unless `[prices]` says otherwise: the simulator, and the presets of
    servers people run themselves. Any other kind is priced from the table, whatever address it listens on (a
    corporate proxy on loopback in front of a cloud provider still bills)."""
    return provider.kind in LOCAL_KINDS


class PriceBook:
    """What applies to a (provider, model) pair: `[prices]` first, then free for a local provider, then the table."""

    def __init__(self, config: Config) -> None:
        self._configured = [(pattern, from_config(price)) for pattern, price in config.prices.items()]
        self._local = {p.name for p in config.providers if is_local(p)}
        self._table = [(e.model, e.price) for e in shipped_table()[2]]
        self._known: dict[tuple[str | None, str], Price | None] = {}

    def price(self, provider: str | None, model: str) -> Price | None:
        """The price, or None for a model nobody priced (its calls are listed as unpriced, never free)."""
        key = (provider, model)
        if key not in self._known:
            if len(self._known) > 4096:  # pattern routes accept invented names
                self._known.clear()
            found = _lookup(self._configured, model)
            if found is None and provider in self._local:
                found = FREE
            if found is None:
                found = _lookup(self._table, model)
            self._known[key] = found  # type: ignore[assignment]
        return self._known[key]

    def cost(self, provider: str | None, model: str, prompt: int, completion: int, cached: int = 0, cache_write: int = 0) -> int | None:
        price = self.price(provider, model)
        return None if price is None else price.cost(prompt, completion, cached, cache_write)


def price_for(prices: dict[str, PriceConfig], model: str) -> PriceConfig | None:
    """The config's price for `model`: an exact entry first, then the first glob that matches."""
    return _lookup(list(prices.items()), model)  # type: ignore[return-value]


def units(value: float | int | str | Decimal) -> int:
    """Picounits of an amount in the currency (a budget of 20.5 → 20_500_000_000_000), read as a decimal."""
    return int(Decimal(str(value)) * UNIT)


def text(picounits: int) -> str:
    """An amount as a plain decimal, exactly (`0.000435`, `20`): headers and messages. Integer arithmetic (the
    budget headers write two on every call under a budget)."""
    whole, fraction = divmod(abs(picounits), UNIT)
    sign = "-" if picounits < 0 else ""
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:012d}".rstrip("0")


def amount(picounits: int) -> float:
    """A cost in the currency's units, for display (the integer stays the truth)."""
    return picounits / UNIT


def minor_digits(currency: str) -> int:
    """Decimals of the currency's minor unit, as Stripe counts them (usd 2, jpy 0, kwd 3)."""
    currency = currency.lower()
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def minor_units(picounits: int, currency: str) -> int:
    """Whole minor units (cents) of an amount, rounded down: a meter reports what was spent, never more."""
    return picounits // (UNIT // 10 ** minor_digits(currency))


def format_amount(minor: int, currency: str) -> str:
    """Stripe amounts (integers in the currency's minor unit): 1234 usd → "12.34", 1234 jpy → "1234", 1234 kwd → "1.234"."""
    digits = minor_digits(currency)
    if digits == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"
