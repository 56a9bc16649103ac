"""sd_notify(3) without libsystemd: tell systemd (a `Type=notify` unit) that the daemon is ready or stopping.

A datagram to the socket systemd names in NOTIFY_SOCKET; outside such a unit there is none, and this does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(*fields: str) -> bool:
    """Send `READY=1`, `STOPPING=1`, `STATUS=…` lines; True when a service manager was told."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not address.startswith(("/", "@")):
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux's abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError:
        return False
    return True
