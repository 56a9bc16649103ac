"""The caller-set names the ledger may store: what a model name may look like, and the label for the rest.

A model name reaches the ledger, the dashboards and a `/metrics` label only when a route resolves it
(a configured name, an alias, or a name matching a configured pattern) and it has this shape; any other
call is recorded under `UNKNOWN_MODEL`, never under the caller's raw string or an empty one.
"""

from __future__ import annotations

import re
import unicodedata

UNKNOWN_MODEL = "(unknown model)"
"""The one label of calls whose model is missing, malformed or not served here."""

MODEL_NAME_MAX = 128
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\-]*")


def is_model_name(name: str) -> bool:
    """Letters, digits and `. _ : / @ + -` (e.g. `gpt-4o-mini`, `meta-llama/Llama-3.1-8B`, `qwen2.5:7b`), at most 128."""
    return len(name) <= MODEL_NAME_MAX and _MODEL_NAME.fullmatch(name) is not None


_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
"""Control, format (zero-width, bidi overrides), surrogate, private-use, unassigned, line and paragraph separators."""


def bounded_text(value: object, field: str, max_length: int, *, multiline: bool = False) -> str:
    """A caller-set text that may be stored and shown (a key's name, a reason, a note): a string of at most
    `max_length` characters after NFC, without control, zero-width or bidi characters. Raises ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"`{field}` must be a string.")
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > max_length:
        raise ValueError(f"`{field}` is longer than {max_length} characters.")
    allowed = "\n\t" if multiline else ""
    if any(unicodedata.category(c) in _UNSAFE_CATEGORIES and c not in allowed for c in text):
        raise ValueError(f"`{field}` holds control, zero-width or bidi characters.")
    return text
