"""Redaction as defence in depth: nothing shaped like an API key reaches a log line.

The daemon's code logs no secrets and no content to begin with (the request path logs an
exception's type, never its message). This filter is the second line: whatever a library or
a future bug puts in a record — its message, its arguments, its traceback text, its stack —
loses every API-key-shaped string before any handler formats it.

    install()                                # on every handler of the root logger (`noor daemon` does this)
    handler.addFilter(RedactingFilter())     # on one handler (tests: caplog.handler)
"""

from __future__ import annotations

import logging
import re
import traceback
from urllib.parse import quote, unquote

REDACTED = "[REDACTED]"

# Longest and most specific first; each pattern keeps only its harmless vendor prefix.
# NoorAPI keys are matched wherever they appear (`Bearer%20sk-noor-…` too); the vendor shapes not right after
# a letter, so "task-…" or "desk_live_…" in ordinary words stay as they are.
_B = r"(?<![A-Za-z])"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # NoorAPI keys keep their display prefix (sk-noor- + 6), the part `noor key list` shows anyway.
    (re.compile(r"(sk-noor-[0-9A-Za-z]{6})[0-9A-Za-z]{4,}"), r"\1" + REDACTED),
    (re.compile(_B + r"(sk-ant-)[A-Za-z0-9_\-]{8,}"), r"\1" + REDACTED),  # Anthropic (sk-ant-api03-…, sk-ant-admin01-…)
    (re.compile(_B + r"(sk-(?:proj|svcacct|admin|None)-)[A-Za-z0-9_\-]{8,}"), r"\1" + REDACTED),  # OpenAI project/service keys
    (re.compile(_B + r"((?:sk|rk)_(?:live|test)_)[A-Za-z0-9]{8,}"), r"\1" + REDACTED),  # Stripe secret and restricted keys
    (re.compile(_B + r"(whsec_)[A-Za-z0-9+/=]{8,}"), r"\1" + REDACTED),  # Stripe webhook signing secrets
    (re.compile(_B + r"(sk-)[A-Za-z0-9_\-]{16,}"), r"\1" + REDACTED),  # OpenAI legacy and compatible servers
    (re.compile(_B + r"(noor-admin-)[A-Za-z0-9_\-]{8,}"), r"\1" + REDACTED),  # our admin token
]
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_literals: set[str] = set()
"""Secrets the daemon resolved (provider keys, SMTP and Stripe secrets): redacted by value, whatever their shape."""

MIN_LITERAL = 8
"""Shorter secrets are not registered: redacting every occurrence of a short string would mangle ordinary text."""


def add_secret(value: str | None) -> None:
    """Redact this secret's literal value (and its URL-encoded form) from every record from now on."""
    if value and len(value) >= MIN_LITERAL:
        _literals.add(value)
        _literals.add(quote(value, safe=""))


def redact(text: str) -> str:
    """`text` with every API-key-shaped string, and every registered secret, replaced by [REDACTED]."""
    if "%" in text and _ENCODED.search(text):
        text = unquote(text)  # `Bearer%20sk-noor-…`, `sk%2Dnoor%2D…`: what a URL carried is checked as decoded
    for literal in _literals:
        if literal in text:
            text = text.replace(literal, REDACTED)
    if "sk" not in text and "rk_" not in text and "whsec_" not in text and "noor-admin-" not in text:
        return text  # the common case: a log line with no candidate at all
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


OWN_LOGGERS = ("noor_daemon", "noor_tui", "benchmarks", "__main__")
"""Loggers whose records are the project's own: fixed texts and exception types, never content."""
WITHHELD = "<withheld>"


def _library_message(record: logging.LogRecord) -> str:
    """A library's record as its fixed template, every argument but numbers withheld: a server library's
    arguments are request lines, header values and bytes it could not parse, which may be a prompt."""
    if not isinstance(record.msg, str):
        return f"{type(record.msg).__name__} {WITHHELD}"
    if not record.args:
        return record.msg
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    kept = tuple(a if isinstance(a, int | float) and not isinstance(a, bool) else WITHHELD for a in args)
    try:
        return record.msg % kept
    except (TypeError, ValueError, KeyError):
        return f"{record.msg} {WITHHELD}"


def _library_traceback(exc_info: tuple) -> str:
    """Where a library's exception happened, and its type; not its message (it may quote a request)."""
    kind, _, tb = exc_info
    name = getattr(kind, "__name__", "Exception")
    return "Traceback (most recent call last):\n" + "".join(traceback.format_tb(tb)) + f"{name}: {WITHHELD}"


class RedactingFilter(logging.Filter):
    """Rewrites a record in place: message and args merged and redacted, traceback text redacted.

    The record's `exc_info` is formatted here (into `exc_text`, redacted) and dropped, so no
    formatter later renders the original exception's message. A record of a library (aiohttp,
    asyncio, …) keeps only its fixed template, with numbers, and its exception's type: at any level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.startswith(OWN_LOGGERS)
        if own:
            try:
                message = record.getMessage()
            except Exception:  # a malformed format string: keep what there is, redacted
                message = f"{record.msg} {record.args!r}" if record.args else str(record.msg)
        else:
            message = _library_message(record)
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            if not own:
                record.exc_text = _library_traceback(record.exc_info)
            elif not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add one `RedactingFilter` to every handler of `logger` (default: the root logger)."""
    target = logger or logging.getLogger()
    found = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(found)
    return found


def configure_logging(level: str = "info") -> None:
    """What `noor daemon` does: one stderr handler at `level`, every record redacted."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install()
    if logging.lastResort is not None:
        logging.lastResort.addFilter(RedactingFilter())
