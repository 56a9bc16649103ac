"""Stripe amounts (integers in the currency's minor unit) as text. No imports: the CLI uses it too."""

from __future__ import annotations

ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}


def format_amount(minor: int, currency: str) -> str:
    """1234 usd → "12.34", 1234 jpy → "1234", 1234 kwd → "1.234"."""
    currency = currency.lower()
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    if digits == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"
