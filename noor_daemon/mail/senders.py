"""Where a message goes: an SMTP server when `[smtp]` is configured, a Maildir in the data dir otherwise.

Failures are described by an error class or an SMTP code only: a server's reply text may
quote the recipient's address, and no address may reach a log line or the ledger.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
from pathlib import Path
from typing import Protocol

import aiosmtplib

from noor_daemon.config import SmtpConfig

DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Sender(Protocol):
    kind: str
    """"smtp" or "maildir"."""

    async def deliver(self, raw: bytes, recipient: str) -> str | None:
        """Hand the message on; returns the Maildir key when it was written to one. Raises DeliveryError."""
        ...


class SmtpSender:
    kind = "smtp"

    def __init__(self, config: SmtpConfig, password: str | None) -> None:
        self.config = config
        self._password = password

    @property
    def port(self) -> int:
        return self.config.port or DEFAULT_PORTS[self.config.security]

    async def deliver(self, raw: bytes, recipient: str) -> None:
        c = self.config
        try:
            await aiosmtplib.send(
                raw,
                sender=c.from_address,
                recipients=[recipient],
                hostname=c.host,
                port=self.port,
                username=c.username,
                password=self._password,
                use_tls=c.security == "tls",
                start_tls=c.security == "starttls",
                timeout=c.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients}) or [0]
            raise DeliveryError(f"smtp {codes[0]}", permanent=all(500 <= code < 600 for code in codes)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"smtp {exc.code}", permanent=500 <= exc.code < 600) from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise DeliveryError(type(exc).__name__, permanent=False) from None
        return None


class MaildirSender:
    """Writes each message as a file (mode 0600) into a Maildir: `new/` holds what was "sent"."""

    kind = "maildir"

    def __init__(self, root: Path) -> None:
        self.root = root

    async def deliver(self, raw: bytes, recipient: str) -> str:
        try:
            return await asyncio.to_thread(self._add, raw)
        except OSError as exc:
            raise DeliveryError(type(exc).__name__, permanent=False) from None

    def _box(self) -> mailbox.Maildir:
        return mailbox.Maildir(self.root, create=True)  # directories are created 0700

    def _add(self, raw: bytes) -> str:
        box = self._box()
        # mailbox creates the message 0666 minus the umask: 077 for the moment makes it 0600 from the start
        # (only ever more private for anything created meanwhile).
        umask = os.umask(0o077)
        try:
            key = box.add(raw)
        finally:
            os.umask(umask)
        path = self.root / "new" / key
        if not path.exists():  # mailbox keeps new messages in new/ under their key; be safe anyway
            path = self.root / box._lookup(key)  # noqa: SLF001
        os.chmod(path, 0o600)
        return key

    def erase(self, keys: list[str], needles: list[bytes]) -> int:
        """Remove the messages `keys`, and any other message whose bytes contain one of `needles`."""
        if not self.root.exists():
            return 0
        box = self._box()
        removed = 0
        for key in keys:
            try:
                box.remove(key)
                removed += 1
            except KeyError:
                pass
        lowered = [n.lower() for n in needles if n]
        if lowered:
            for key in list(box.iterkeys()):
                try:
                    data = box.get_bytes(key).lower()
                except KeyError:
                    continue
                if any(n in data for n in lowered):
                    box.discard(key)
                    removed += 1
        return removed
