"""Money: a model's price, a call's cost, and amounts as text.

Prices come from the config's `[prices]` (an exact model name first, then globs); a model
without a price has no cost (None), which the views list as unpriced rather than count as free.
"""

from __future__ import annotations

import fnmatch

from noor_daemon.config import PriceConfig

ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}


def price_for(prices: dict[str, PriceConfig], model: str) -> PriceConfig | None:
    """The model's price: an exact entry first, then the first glob that matches."""
    price = prices.get(model)
    if price is not None:
        return price
    for pattern, candidate in prices.items():
        if any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(model, pattern):
            return candidate
    return None


def cost_of(price: PriceConfig | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if price is None:
        return None
    return (prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million) / 1_000_000


def format_amount(minor: int, currency: str) -> str:
    """Stripe amounts (integers in the currency's minor unit): 1234 usd → "12.34", 1234 jpy → "1234", 1234 kwd → "1.234"."""
    currency = currency.lower()
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    if digits == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"
