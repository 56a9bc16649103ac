"""Numbers, durations and times as the dashboard shows them: short, aligned, never a traceback on None."""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo

DASH = "–"


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 UTC time from the daemon (`2025-01-02T03:04:05.678Z`) as an aware datetime."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def integer(value: int | float | None) -> str:
    return DASH if value is None else f"{int(value):,}"


def si(value: int | float | None, digits: int = 1) -> str:
    """12 → "12", 38_200 → "38.2k", 4_100_000 → "4.1M"."""
    if value is None:
        return DASH
    number = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            scaled = number / limit
            text = f"{scaled:.{digits}f}".rstrip("0").rstrip(".") if scaled < 100 else f"{scaled:.0f}"
            return text + suffix
    if number == int(number):
        return f"{int(number)}"
    return f"{number:.{digits}f}".rstrip("0").rstrip(".")


def rate(value: float | None) -> str:
    """A per-minute rate: one decimal below 10, SI above."""
    if value is None:
        return DASH
    if value < 10:
        return f"{value:.1f}".rstrip("0").rstrip(".") if value else "0"
    return si(value)


def percent(fraction: float | None, digits: int = 1) -> str:
    if fraction is None:
        return DASH
    value = fraction * 100
    if 0 < value < 10 ** -digits:
        return f"<{10 ** -digits:g}%"
    return f"{value:.{digits}f}%"


def duration_ms(value: float | None) -> str:
    """212 → "212 ms", 1240 → "1.24 s", 95_000 → "1m35s"."""
    if value is None:
        return DASH
    if value == 0:
        return "0"
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(value / 1000, 60)
    return f"{int(minutes)}m{int(seconds):02d}s"


CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}
"""Currencies whose symbol alone is unambiguous to English readers; any other shows its ISO code ("CHF 3.41")."""
ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}
"""ISO 4217 minor units, as the daemon's `domain/money.py` counts them for Stripe."""
MAX_DECIMALS = 8


def currency_digits(currency: str) -> int:
    code = currency.upper()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def money(value: float | None, currency: str = "USD", *, compact: bool = False, max_decimals: int = MAX_DECIMALS) -> str:
    """An amount in the daemon's currency: the currency's own decimals from 1 up ("$3.41", "¥120"), two
    significant digits below ("$0.0043": one call often costs a fraction of a cent, and "$0.00" would hide
    it), down to `max_decimals` ("<$0.00001" below). `compact` writes 10,000 and more as "$12.3k", for narrow
    cells."""
    if value is None:
        return DASH
    code = currency.upper()
    symbol = CURRENCY_SYMBOLS.get(code)
    prefix = symbol if symbol is not None else f"{code} "
    digits = currency_digits(code)
    if compact and value >= 10_000:
        return prefix + si(value)
    if 0 < value < 1:
        places = max(digits, min(max_decimals, 1 - math.floor(math.log10(value))))
        if round(value, places) == 0:
            return f"<{prefix}{10 ** -max_decimals:.{max_decimals}f}"
        text = f"{value:.{places}f}"
        whole, _, decimals = text.partition(".")
        decimals = decimals.rstrip("0").ljust(digits, "0")  # 0.0999 rounds to 0.100: 0.10
        return f"{prefix}{whole}.{decimals}" if decimals else prefix + whole
    return f"{prefix}{value:,.{digits}f}"


def cost_text(cost: float | None, unpriced_models: list[str], currency: str = "USD") -> str:
    """A cost as the usage views show it: "unpriced" when nothing of it had a price (never "$0.00"), and a
    trailing * when some of its calls had none, so the figure leaves them out."""
    if cost is None:
        return "unpriced"
    return money(cost, currency) + ("*" if unpriced_models else "")


def span(seconds: float) -> str:
    """A duration in words-ish: 45s, 3m, 2h 5m, 4d 3h."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours}h {rest // 60}m" if rest >= 60 else f"{hours}h"
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d {rest // 3600}h" if rest >= 3600 else f"{days}d"


def ago(value: str | None, now: datetime) -> str:
    """"3m ago", "in 2h", "never"."""
    moment = parse_time(value)
    if moment is None:
        return "never"
    delta = (now - moment).total_seconds()
    if abs(delta) < 5:
        return "now"
    return f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}"


def until(value: str | None, now: datetime) -> str:
    """How long until `value`, compactly: "now", "45s", "14d 12h"."""
    moment = parse_time(value)
    if moment is None:
        return DASH
    delta = (moment - now).total_seconds()
    return "now" if delta < 1 else span(delta)


def clock_time(value: str | datetime | None, tz: tzinfo | None, *, seconds: bool = True) -> str:
    moment = parse_time(value) if isinstance(value, str) or value is None else value
    if moment is None:
        return DASH
    local = moment.astimezone(tz or UTC)
    return local.strftime("%H:%M:%S" if seconds else "%H:%M")


def date_time(value: str | None, tz: tzinfo | None) -> str:
    moment = parse_time(value)
    if moment is None:
        return DASH
    return moment.astimezone(tz or UTC).strftime("%Y-%m-%d %H:%M")


def date(value: str | None, tz: tzinfo | None) -> str:
    moment = parse_time(value)
    if moment is None:
        return DASH
    return moment.astimezone(tz or UTC).strftime("%Y-%m-%d")


def bar(fraction: float, width: int) -> str:
    """A horizontal bar in eighths: `█████▍    `."""
    fraction = max(0.0, min(1.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    return text.ljust(width)


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """0 and up to `count` round steps reaching at least `high`."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if raw <= step * magnitude:
            break
    step *= magnitude
    ticks = [0.0]
    while ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
