"""The client-facing wire formats under /v1, one typed strategy (`base.Wire`) per endpoint.

`WIRES` maps each endpoint's path to its strategy; the proxy looks nothing else up.
"""

from __future__ import annotations

from noor_daemon.gateway.wire.anthropic import CountTokensWire, MessagesWire
from noor_daemon.gateway.wire.base import Family, Outgoing, Wire
from noor_daemon.gateway.wire.openai import ChatCompletionsWire, CompletionsWire, EmbeddingsWire, ResponsesWire

WIRES: dict[str, Wire] = {
    wire.path: wire
    for wire in (ChatCompletionsWire(), CompletionsWire(), EmbeddingsWire(), ResponsesWire(), MessagesWire(), CountTokensWire())
}

__all__ = ["WIRES", "Family", "Outgoing", "Wire"]
