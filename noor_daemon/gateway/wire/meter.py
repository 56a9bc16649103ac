"""What a stream reveals about its own token usage, and the offline estimate when it says nothing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Of the prompt tokens, those the provider read from its prompt cache (priced as such)."""
    cache_write_tokens: int = 0
    """Of the prompt tokens, those the provider wrote to its prompt cache."""


class StreamMeter:
    """Watches a stream event by event; each wire subclasses it.

    `on_event` answers (forward this event?, is it the terminal one?). The terminal event
    is held back by the proxy until the usage row is committed.
    """

    relayed = True
    """The provider's own events go to the caller (False: a translated stream, whose events the gateway writes)."""
    LOUD: tuple[bytes, ...] = ()
    """Bytes found in every event `on_event` must see (usage, an error, the end), and maybe in others: where
    none is, events are quiet and counted a block at a time. Empty: the wire cannot tell, every event is seen."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.content_events = 0
        self.error_status: int | None = None
        """Set when the upstream reported an error inside the stream: the HTTP status it stands for."""

    def on_event(self, event: bytes) -> tuple[bool, bool]:
        raise NotImplementedError

    def relay(self, events: list[bytes], held: list[bytes]) -> bytes:
        """The bytes of `events` (whole events, in order) to forward now. The terminal event and every
        event after it are appended to `held`: they go out once the usage row is committed."""
        if not events:
            return b""
        block = events[0] if len(events) == 1 else b"".join(events)
        loud = -1 if held else self.loud_at(block, 0)
        if loud < 0 and not held:  # most of a stream: forwarded as it came
            self.count_quiet(block, len(events))
            return block
        # The events wholly before the next loud byte go on as one quiet run; the others, one at a time.
        ready = []
        run_start = offset = quiet_run = 0
        for event in events:
            end = offset + len(event)
            if not held and (loud < 0 or end <= loud):
                quiet_run += 1
            else:
                if quiet_run:
                    run = block[run_start:offset]
                    self.count_quiet(run, quiet_run)
                    ready.append(run)
                    quiet_run = 0
                forward, terminal = self.on_event(event)
                if terminal or held:
                    held.append(event)
                elif forward:
                    ready.append(event)
                run_start = end
                loud = self.loud_at(block, end)
            offset = end
        if quiet_run:
            run = block[run_start:]
            self.count_quiet(run, quiet_run)
            ready.append(run)
        return ready[0] if len(ready) == 1 else b"".join(ready)

    def loud_at(self, block: bytes, start: int) -> int:
        """Where in `block`, from `start`, the first `LOUD` byte string begins; -1 when none does."""
        if not self.LOUD:
            return start if start < len(block) else -1
        found = -1
        for marker in self.LOUD:
            at = block.find(marker, start)
            if at >= 0 and (found < 0 or at < found):
                found = at
        return found

    def quiet(self, events: bytes) -> bool:
        """True when no event in `events` (whole events, joined) can matter to this meter: no usage, no
        error, no end. The proxy then forwards them as one block and `count_quiet` counts them, instead
        of an `on_event` per event. A wire that cannot tell cheaply (no `LOUD`) says False."""
        return bool(self.LOUD) and self.loud_at(events, 0) < 0

    def count_quiet(self, events: bytes, count: int) -> None:
        """Count the content events of a quiet block of `count` events."""
        self.content_events += count

    def finish(self) -> bytes:
        """Events to add when the upstream's stream has ended whole (a translated stream closes its answer
        here if the provider sent no terminal event); a relayed stream adds nothing."""
        return b""


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
    return Usage(reported.prompt_tokens, meter.content_events, reported.cached_tokens, reported.cache_write_tokens), True
