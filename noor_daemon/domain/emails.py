"""Account email addresses: validated, normalized, and compared by how they look.

An address is the one thing an account holds about a person, and it ends up in a mail's `To:` header:
`normalize` refuses NUL and other control characters, zero-width and bidi characters and markup
(through `email-validator`, RFC 5321/6531 syntax, no DNS lookup) and returns the NFC form with the
domain lower-cased. `lookalike_key` folds what a reader cannot tell apart — case, compatibility forms,
and letters of other scripts that look like Latin ones (Cyrillic `а` for Latin `a`, from Unicode's
confusables via `confusable-homoglyphs`) — so two addresses that read the same are one account.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from confusable_homoglyphs import confusables
from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # RFC 3696 errata: the longest address a mailbox path allows


class InvalidEmail(ValueError):
    """The address is not one a mail can be sent to; the message says why, without echoing it."""


def normalize(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidEmail("`email` must be an email address.")
    text = unicodedata.normalize("NFC", value.strip())
    if len(text) > MAX_LENGTH:
        raise InvalidEmail(f"`email` is longer than {MAX_LENGTH} characters.")
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"`email` is not a valid address: {_reason(exc)}") from None
    if confusables.is_dangerous(checked.local_part) or any(confusables.is_dangerous(label) for label in checked.domain.split(".")):
        raise InvalidEmail("`email` mixes scripts in a way that imitates another address (e.g. Cyrillic letters among Latin ones).")
    return checked.normalized


def _reason(exc: EmailNotValidError) -> str:
    """email-validator's reason, without the characters it quotes (they are the caller's input)."""
    text = str(exc)
    return text.split(":")[0] if ":" in text else text


@lru_cache(maxsize=4096)
def lookalike_key(email: str) -> str:
    """What `email` looks like: NFKC, case-folded, each confusable letter replaced by its Latin look-alike."""
    folded = unicodedata.normalize("NFKC", email).casefold()
    out = []
    for char in folded:
        if char.isascii():
            out.append(char)
            continue
        found = confusables.is_confusable(char, preferred_aliases=["latin"], greedy=True)
        glyph = found[0]["homoglyphs"][0]["c"] if found and found[0]["homoglyphs"] else char
        out.append(glyph.casefold())
    return "".join(out)
