"""The CLI never sends the admin token over plain http:// to another machine: it refuses before connecting.

A real listener on a non-loopback address of this machine records every byte it is sent; `noor` commands
pointed at it with a token must exit 2 with advice to use https, and the listener must see no connection.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from security_helpers import non_loopback_address

pytestmark = pytest.mark.engine_independent

NOOR = str(Path(sys.executable).with_name("noor"))
TOKEN = "noor-admin-" + "t" * 40


class Listener:
    """A TCP server on `address` that accepts connections and keeps whatever arrives."""

    def __init__(self, address: str) -> None:
        self.sock = socket.create_server((address, 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.connections = 0
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(1)
            try:
                self.received += conn.recv(65536)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    found = Listener(address)
    yield address, found
    found.close()


@pytest.mark.parametrize("command", [["account", "list"], ["usage", "summary"], ["key", "list"]])
def test_admin_commands_refuse_plain_http_to_another_machine(listener, command: list[str]) -> None:
    address, server = listener
    env = {**os.environ, "NOOR_ADMIN_TOKEN": TOKEN}
    result = subprocess.run([NOOR, *command, "--url", f"http://{address}:{server.port}"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "https://" in result.stderr and "plain http://" in result.stderr
    assert server.connections == 0 and TOKEN.encode() not in server.received


def test_doctor_reports_the_refusal_without_sending(listener) -> None:
    address, server = listener
    env = {**os.environ, "NOOR_ADMIN_TOKEN": TOKEN}
    result = subprocess.run([NOOR, "doctor", "--json", "--url", f"http://{address}:{server.port}"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert "plain http://" in result.stdout
    assert server.connections == 0


def test_loopback_and_https_are_allowed() -> None:
    from noor_daemon.client.http import cleartext_to_network

    assert not cleartext_to_network("http://127.0.0.1:8787")
    assert not cleartext_to_network("http://[::1]:8787")
    assert not cleartext_to_network("http://localhost:8787")
    assert not cleartext_to_network("https://gateway.example:8787")
    assert cleartext_to_network("http://gateway.example:8787")
    assert cleartext_to_network("http://10.1.2.3")
