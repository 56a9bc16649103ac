"""What a stream reveals about its own token usage, and the offline estimate when it says nothing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class StreamMeter:
    """Watches a stream event by event; each wire subclasses it.

    `on_event` answers (forward this event?, is it the terminal one?). The terminal event
    is held back by the proxy until the usage row is committed.
    """

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.content_events = 0

    def on_event(self, event: bytes) -> tuple[bool, bool]:
        raise NotImplementedError


def estimate_tokens(size_in_bytes: int) -> int:
    """About four bytes of English text per token: cheap, offline, and marked as an estimate."""
    return (size_in_bytes + 3) // 4
