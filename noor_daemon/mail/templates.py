"""The transactional messages: plain text plus an HTML alternative.

Each template takes only what the message needs to say. None takes anything from an API
call, and the HTML is self-contained: no images, no remote styles, no tracking links.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

PRODUCT = "NoorAPI"

KINDS = ("account_created", "email_changed", "deletion_completed", "policy_notice", "billing_receipt")


@dataclass(frozen=True)
class Rendered:
    kind: str
    subject: str
    paragraphs: tuple[str, ...]
    """The body as paragraphs of plain text; the HTML alternative is built from the same text."""

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs) + "\n\n-- \n" + FOOTER + "\n"

    @property
    def html(self) -> str:
        body = "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in self.paragraphs)
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.subject)}</title></head>\n"
            "<body style=\"font-family: sans-serif; line-height: 1.5; max-width: 40em\">\n"
            f"{body}\n<hr>\n<p style=\"color: #666; font-size: smaller\">{html.escape(FOOTER)}</p>\n"
            "</body></html>\n"
        )


FOOTER = (
    f"This is a transactional message from the {PRODUCT} gateway your team runs. It is sent "
    "because of a change to your account; it contains nothing from your API calls."
)


def day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d")


def moment(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def account_created(*, plan: str, created_at: int) -> Rendered:
    return Rendered(
        "account_created",
        f"Your {PRODUCT} account was created",
        (
            "Hello,",
            f"an account with this address was created on the {PRODUCT} gateway on {moment(created_at)}, "
            f"on the plan \"{plan}\". Your administrator gives you its API keys.",
            "What the gateway keeps about you: this address, your keys (hashed), and for each call the "
            "model, token counts, latency, status and time. It never stores what you send or receive. "
            "Usage records are deleted after the retention period.",
            "You can ask for a copy of your data, a correction of this address, or the deletion of the "
            "account at any time; requests are answered within 30 days.",
        ),
    )


def email_changed(*, changed_at: int) -> Rendered:
    return Rendered(
        "email_changed",
        f"Your {PRODUCT} account now uses this address",
        (
            "Hello,",
            f"on {moment(changed_at)} the contact address of your {PRODUCT} account was changed to this one. "
            "Messages about the account come here from now on.",
            "If you did not ask for this change, tell your gateway's administrator.",
        ),
    )


def deletion_completed(*, deleted_at: int) -> Rendered:
    return Rendered(
        "deletion_completed",
        f"Your {PRODUCT} account has been deleted",
        (
            "Hello,",
            f"on {moment(deleted_at)} your {PRODUCT} account was deleted, with its API keys, its usage "
            "records and its usage totals. Its keys stopped working at that moment.",
            "This is the last message to this address. It is not kept: once this message has been "
            "handed on, the gateway holds nothing that names you.",
        ),
    )


def policy_notice(*, version: int, summary: str, effective_at: int, material: bool, url: str | None) -> Rendered:
    kind = "a material change" if material else "a change"
    paragraphs = [
        "Hello,",
        f"the privacy policy of the {PRODUCT} gateway you use has {kind}, version {version}, "
        f"which takes effect on {day(effective_at)}.",
        f"What changes: {summary}",
    ]
    if url:
        paragraphs.append(f"The full text: {url}")
    if material:
        paragraphs.append(
            "You are told at least 14 days before it takes effect. If you do not agree, you can ask for "
            "your data and for the deletion of your account before then."
        )
    return Rendered("policy_notice", f"{PRODUCT} privacy policy: {kind} from {day(effective_at)}", tuple(paragraphs))


def billing_receipt(
    *, amount: str, currency: str, period: str, paid_at: int, reference: str | None = None, url: str | None = None
) -> Rendered:
    """A payment receipt; `amount` is already formatted ("12.00"). Card details are never known here."""
    paragraphs = [
        "Hello,",
        f"thank you: we received your payment of {amount} {currency.upper()} for {period} on {moment(paid_at)}.",
    ]
    if reference:
        paragraphs.append(f"Reference: {reference}")
    if url:
        paragraphs.append(f"Your receipt and invoices: {url}")
    return Rendered("billing_receipt", f"{PRODUCT} receipt: {amount} {currency.upper()}", tuple(paragraphs))


def budget_alert(*, what: str, threshold: int, spent: str, limit: str, currency: str, resets_at: int) -> Rendered:
    """A budget crossed a threshold. `what` names the scope ("your account", "the key sk-noor-AbC123 laptop").

    At 100 % the budget refuses calls: strict admission refuses a call whose worst case no longer fits,
    so this alert may come while a little of the budget is still unspent."""
    subject = what[0].upper() + what[1:]
    if threshold >= 100:
        reached = "is used up"
        news = (
            f"{subject} has spent {spent} {currency} of its budget of {limit} {currency} for this period. "
            f"What is left cannot cover another call, so calls are refused until the budget resets on {moment(resets_at)}."
        )
    else:
        reached = f"is {threshold}% used"
        news = (
            f"{subject} has spent {spent} {currency} of its budget of {limit} {currency} for this period "
            f"({threshold}% reached). The budget resets on {moment(resets_at)}."
        )
    return Rendered(
        "budget_alert",
        f"{PRODUCT}: {subject}'s budget {reached}",
        ("Hello,", news, "Costs are estimates from the gateway's price table; your provider's bill is the reference."),
    )


def compose(rendered: Rendered, *, sender: str, recipient: str, now_ms: int) -> EmailMessage:
    """The full message: text first, HTML as the alternative."""
    message = EmailMessage()
    message["From"] = f"{PRODUCT} <{sender}>"
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(now_ms / 1000, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
