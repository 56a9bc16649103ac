"""Messages the dashboard's workers post: a poll answered, a poll failed, the connection changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class Polled(Message):
    """A screen's poll worker fetched its data; the screen renders it and schedules the next poll."""

    data: Any


@dataclass
class PollFailed(Message):
    """A screen's poll could not reach the daemon or was refused; the banner says so, a retry is scheduled."""

    error: Exception


@dataclass
class ConnectionChanged(Message):
    """The daemon became reachable or unreachable (posted to the app's screens' banners)."""

    state: str
    message: str


@dataclass
class DataChanged(Message):
    """Something was created, changed or deleted: screens showing it poll again now."""

    what: str
    """"keys", "accounts", "privacy"…"""
