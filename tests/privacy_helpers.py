"""Helpers for the privacy and mail tests: a real SMTP server on loopback (aiosmtpd), configs, waiting."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import SIMULATOR_CONFIG


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class Recorder:
    """The SMTP handler: keeps what it receives; can refuse the next recipients with a given reply."""

    received: list[Received] = field(default_factory=list)
    refuse_next: int = 0
    refusal: str = "451 4.3.0 Try again later"
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refuse_next:
            self.refuse_next -= 1
            return self.refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpServer:
    recorder: Recorder
    port: int
    controller: Controller

    def config(self, **extra: str) -> str:
        """The simulator config plus an `[smtp]` section pointing here."""
        lines = [
            "[smtp]",
            'host = "127.0.0.1"',
            f"port = {self.port}",
            'security = "none"',
            'from_address = "noor@gateway.example"',
            "timeout = 5",
        ]
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in extra.items()]
        return SIMULATOR_CONFIG + "\n" + "\n".join(lines) + "\n"


class _Authenticator:
    def __init__(self, username: str, password: str, logins: list[str]) -> None:
        self.username, self.password, self.logins = username, password, logins

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
        )
        if ok:
            self.logins.append(self.username)
        return AuthResult(success=ok)


def start_smtp(*, username: str | None = None, password: str | None = None) -> SmtpServer:
    recorder = Recorder()
    port = free_port()
    kwargs = {}
    if username:
        kwargs = {
            "authenticator": _Authenticator(username, password or "", recorder.logins),
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return SmtpServer(recorder, port, controller)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a loopback port, recording what it receives."""
    server = start_smtp()
    yield server
    server.controller.stop()


async def eventually(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for something another task does (a delivery, a background run); not for time to pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def eventually_async(condition, timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def maildir_files(data_dir: Path) -> list[Path]:
    root = data_dir / "maildir"
    return sorted(p for sub in ("new", "cur", "tmp") for p in (root / sub).glob("*") if p.is_file()) if root.exists() else []


def chat_body(model: str = "sim-gpt") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}
