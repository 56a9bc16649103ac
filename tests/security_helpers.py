"""Helpers for the security tests: an in-memory keyring, daemons on any address (TLS or not),
a local non-loopback address, well-formed keys with a chosen prefix."""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.errors
from aiohttp import web
from keyring.backend import KeyringBackend

from noor_daemon import config as config_module
from noor_daemon.app import create_app, server_options
from noor_daemon.domain import api_keys as auth
from noor_daemon.server import GatewayRunner
from noor_daemon.settings import DaemonSettings
from noor_daemon.tls import server_ssl_context


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps everything in a dict: the OS keyring's behaviour, no OS."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.entries[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError(username) from None


@contextmanager
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


def loaded(config_text: str, path: Path | None = None) -> config_module.LoadedConfig:
    return config_module.LoadedConfig(config_module.parse(config_text, str(path or "test.toml")), path)


@dataclass
class Served:
    app: web.Application
    url: str
    port: int
    data_dir: Path
    loop: asyncio.AbstractEventLoop | None = None
    """serve_in_thread: the daemon's loop, for `asyncio.run_coroutine_threadsafe`."""


@asynccontextmanager
async def serve(config_text: str, data_dir: Path, *, host: str = "127.0.0.1", token: str = "noor-admin-test-token",
                source: str = "test", config_path: Path | None = None):
    """The real app on `host` (HTTPS when the config has tls_cert/tls_key), in this event loop."""
    loaded_config = loaded(config_text, config_path)
    context = server_ssl_context(loaded_config)
    app = create_app(DaemonSettings(loaded_config, data_dir, token, source))
    runner = GatewayRunner(app, access_log=None, **server_options(loaded_config.config))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if context else "http"
        shown = "127.0.0.1" if host in ("0.0.0.0", "127.0.0.1") else host
        yield Served(app, f"{scheme}://{shown}:{port}", port, data_dir)
    finally:
        await runner.cleanup()


@contextmanager
def serve_in_thread(config_text: str, data_dir: Path, **options) -> Iterator[Served]:
    """`serve` on a loop of its own, for CliRunner tests (the CLI runs its own asyncio.run)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        try:
            async with serve(config_text, data_dir, **options) as served:
                state["served"] = served
                ready.set()
                await stop.wait()
        except BaseException as exc:
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(15), "the daemon did not start"
    if "error" in state:
        raise state["error"]  # type: ignore[misc]
    served = state["served"]
    served.loop = loop  # type: ignore[attr-defined]
    try:
        yield served  # type: ignore[misc]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback and can be bound, or None."""
    candidates: list[str] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            candidates.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    for address in candidates:
        if address.startswith("127.") or address == "0.0.0.0":
            continue
        try:
            with socket.socket() as s:
                s.bind((address, 0))
        except OSError:
            continue
        return address
    return None


def key_with_prefix(six: str) -> str:
    """A well-formed NoorAPI key whose display prefix is `sk-noor-` + `six`."""
    alphabet = auth._ALPHABET  # noqa: SLF001
    body = six + "".join(secrets.choice(alphabet) for _ in range(auth._BODY_LEN - len(six)))  # noqa: SLF001
    key = auth.KEY_PREFIX + body + auth._checksum(body)  # noqa: SLF001
    assert auth.well_formed(key)
    return key


def client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))
