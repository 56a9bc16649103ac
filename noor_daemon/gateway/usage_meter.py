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
        self.error_status: int | None = None
        """Set when the upstream reported an error inside the stream: the HTTP status it stands for."""

    def on_event(self, event: bytes) -> tuple[bool, bool]:
        raise NotImplementedError


def estimate_tokens(size_in_bytes: int) -> int:
    """About four bytes of English text per token: cheap, offline, and marked as an estimate."""
    return (size_in_bytes + 3) // 4


def stream_usage(meter: StreamMeter, prompt_bytes: int, *, complete: bool) -> tuple[Usage, bool]:
    """(usage, estimated) to meter for a stream that has ended, whole or not.

    A whole stream's reported usage is exact. A stream cut short (the client left, the
    upstream broke) may carry only its opening usage, as Anthropic's `message_start` does
    (input exact, output 1); its output is then at least what was delivered, one token per
    content event, and the row is marked estimated. With no usage at all, both are estimated.
    """
    reported = meter.usage
    if reported is None:
        return Usage(estimate_tokens(prompt_bytes), meter.content_events), True
    if complete or reported.completion_tokens >= meter.content_events:
        return reported, False
    return Usage(reported.prompt_tokens, meter.content_events), True
