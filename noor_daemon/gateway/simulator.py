"""The built-in simulated LLM: deterministic answers, realistic streaming, no network.

It lets a new user see the gateway work offline and powers `noor demo`. Every answer
says it comes from the simulator, so nobody mistakes it for a model.

It speaks each format as the real APIs do (`simulated_formats.py` writes the answers), checks
requests as they do (`messages` must be a list, Anthropic requires `max_tokens`, embeddings only
on embedding models) with their error shapes, and calls tools: when tools are offered and the
conversation's last word is the user's (always when `tool_choice` forces one), it calls the tool
the user named (else the first), with the user's `backticked` text as its string arguments. So
an agent CLI pointed at it runs a real tool and gets a closing answer after the tool's result.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import orjson

from noor_daemon.gateway import simulated_formats as formats
from noor_daemon.gateway.wire.meter import estimate_tokens
from noor_daemon.presets import FORMAT_PATHS

_WORDS = (
    "the gateway meters every call and never stores what was said while tokens stream through "
    "quietly with latency counted and limits kept so teams can share one daemon safely on one machine"
).split()

SIMULATOR_LABEL = "[NoorAPI simulator]"


class SimulatedReply:
    def __init__(self, status: int, content_type: str, parts: list[bytes], first_delay: float, delay: float) -> None:
        self.status = status
        self.content_type = content_type
        self.headers = {"x-noor-simulator": "1"}
        self._parts = parts
        self._first_delay = first_delay
        self._delay = delay

    async def chunks(self) -> AsyncIterator[bytes]:
        for index, part in enumerate(self._parts):
            wait = self._first_delay if index == 0 else self._delay
            if wait:
                await asyncio.sleep(wait)
            yield part

    async def read(self) -> bytes:
        if self._first_delay or self._delay:
            await asyncio.sleep(self._first_delay + self._delay * len(self._parts))
        return b"".join(self._parts)

    def release(self) -> None:
        pass


@dataclass
class Call:
    """A tool call the simulator decided to make."""

    id: str
    name: str
    arguments: str


@dataclass
class Plan:
    """What the simulator answers: words, or tool calls; and why it stopped."""

    model: str
    ident: str
    prompt_tokens: int
    words: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    stop: str = "end"
    """end | length | tool"""

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def completion_tokens(self) -> int:
        if self.calls:
            return sum(estimate_tokens(len(c.name) + len(c.arguments)) for c in self.calls) + 2 * len(self.calls)
        return len(self.words)


class SimulatorError(Exception):
    """A request the real API would refuse: (status, its error body)."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _openai_error(message: str, param: str | None, code: str | None = None, status: int = 400) -> SimulatorError:
    return SimulatorError(status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})


def _anthropic_error(message: str) -> SimulatorError:
    return SimulatorError(400, {"type": "error", "error": {"type": "invalid_request_error", "message": message}})


class SimulatorUpstream:
    """Answers OpenAI chat, completions, embeddings, responses and Anthropic messages."""

    kind = "simulator"
    secrets: tuple[str, ...] = ()

    def __init__(self, name: str, latency_scale: float = 1.0) -> None:
        self.name = name
        self.latency_scale = latency_scale
        self.formats = set(FORMAT_PATHS.values())

    async def probe(self) -> bool:
        return True

    def forget_format(self, endpoint: str) -> bool:
        return False

    async def send(
        self, endpoint: str, body: bytes, client_headers: Mapping[str, str], deadline: float | None = None,
        model: str | None = None,
    ) -> SimulatedReply:
        payload = orjson.loads(body)
        seed = int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big")
        prompt_tokens = max(1, estimate_tokens(len(body)) - 8)
        name = str(payload.get("model", "simulator"))
        stream = payload.get("stream") is True
        first, step = 0.12 * self.latency_scale, 0.012 * self.latency_scale
        try:
            if endpoint == "embeddings":
                _check_embeddings(payload, name)
                return SimulatedReply(200, "application/json", [formats.embeddings(payload, seed, prompt_tokens)], first / 4, 0)
            if endpoint == "messages/count_tokens":
                return SimulatedReply(200, "application/json", [orjson.dumps({"input_tokens": prompt_tokens})], 0, 0)
            conversation = _READERS.get(endpoint)
            if conversation is None:
                return SimulatedReply(404, "application/json", [b'{"error":{"message":"not simulated"}}'], 0, 0)
            if "embed" in name:  # an embedding model answers embeddings only
                if endpoint == "messages":
                    raise _anthropic_error(f"model: `{name}` is an embedding model; it does not answer messages")
                raise _openai_error(f"The model `{name}` is an embedding model and does not answer /v1/{endpoint}.", "model",
                                    "model_not_supported", 404)
            plan = _plan(conversation(payload), payload, name, seed, prompt_tokens, endpoint)
        except SimulatorError as refused:
            return SimulatedReply(refused.status, "application/json", [orjson.dumps(refused.body)], 0, 0)
        parts = formats.WRITERS[endpoint](plan, payload, stream)
        if not stream:
            return SimulatedReply(200, "application/json", parts, first + step * len(plan.words or plan.calls), 0)
        return SimulatedReply(200, "text/event-stream", parts, first, step)


# -- what was said, what is offered ---------------------------------------------------------------


@dataclass
class Conversation:
    tools: list[tuple[str, dict]]
    """(name, JSON schema of its arguments) of each function tool offered."""
    choice: str | None
    """auto | none | required | a tool's name (forced); None when not given."""
    user_text: str
    """The last text the user wrote."""
    after_tool: bool
    """The conversation ends with a tool's result: time to answer in words."""
    parallel: bool = True


def _chat_conversation(payload: dict) -> Conversation:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _openai_error("Invalid type for 'messages': expected a non-empty array of messages.", "messages", "invalid_type")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise _openai_error(f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role", "invalid_value")
    tools = [(t["function"]["name"], t["function"].get("parameters") or {}) for t in payload.get("tools") or []
             if isinstance(t, dict) and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)]
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name")
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return Conversation(tools, choice if isinstance(choice, str) else None, _last_text(user.get("content")),
                        messages[-1].get("role") == "tool", payload.get("parallel_tool_calls") is not False)


def _messages_conversation(payload: dict) -> Conversation:
    if not isinstance(payload.get("max_tokens"), int):
        raise _anthropic_error("max_tokens: Field required")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _anthropic_error("messages: Input should be a valid list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise _anthropic_error(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    tools = [(t["name"], t.get("input_schema") or {}) for t in payload.get("tools") or []
             if isinstance(t, dict) and isinstance(t.get("name"), str) and t.get("type") in (None, "custom")]
    choice = payload.get("tool_choice")
    named = None
    parallel = True
    if isinstance(choice, dict):
        named = {"auto": "auto", "any": "required", "none": "none"}.get(choice.get("type"), choice.get("name"))
        parallel = choice.get("disable_parallel_tool_use") is not True
    last = messages[-1]
    content = last.get("content")
    after_tool = last.get("role") == "user" and isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return Conversation(tools, named, _last_text(user.get("content")), after_tool, parallel)


def _responses_conversation(payload: dict) -> Conversation:
    given = payload.get("input")
    if isinstance(given, str):
        items: list = [{"role": "user", "content": given}]
    elif isinstance(given, list) and given:
        items = given
    else:
        raise _openai_error("Invalid type for 'input': expected a string or an array of input items.", "input", "invalid_type")
    tools = [(t["name"], t.get("parameters") or {}) for t in payload.get("tools") or []
             if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)]
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        choice = choice.get("name")
    last = items[-1] if isinstance(items[-1], dict) else {}
    user = next((i for i in reversed(items) if isinstance(i, dict) and i.get("role") == "user"), {})
    return Conversation(tools, choice if isinstance(choice, str) else None, _last_text(user.get("content")),
                        last.get("type") == "function_call_output", payload.get("parallel_tool_calls") is not False)


def _completion_conversation(payload: dict) -> Conversation:
    prompt = payload.get("prompt")
    text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt or [] if isinstance(p, str))
    return Conversation([], None, text, False)


_READERS = {
    "chat/completions": _chat_conversation,
    "messages": _messages_conversation,
    "responses": _responses_conversation,
    "completions": _completion_conversation,
}


def _last_text(content: object) -> str:
    """A message's last text part: the user's own words (agents put context in the parts before)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for part in reversed(content):
            if isinstance(part, dict) and part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
                return part["text"]
    return ""


def _check_embeddings(payload: dict, name: str) -> None:
    if "embed" not in name:
        raise _openai_error(f"The model `{name}` does not support embeddings.", "model", "model_not_supported")
    dims = payload.get("dimensions")
    if dims is not None and (
        not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= formats.MAX_EMBEDDING_DIMENSIONS
    ):
        raise _openai_error(f"dimensions must be an integer from 1 to {formats.MAX_EMBEDDING_DIMENSIONS}.", "dimensions")
    inputs = payload.get("input")
    if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) and len(inputs) > formats.MAX_EMBEDDING_INPUTS:
        raise _openai_error(f"input may hold at most {formats.MAX_EMBEDDING_INPUTS} items.", "input")


# -- the answer ----------------------------------------------------------------------------------


def _plan(conversation: Conversation, payload: dict, model: str, seed: int, prompt_tokens: int, endpoint: str) -> Plan:
    plan = Plan(model, f"{seed:x}", prompt_tokens)
    chosen = _tools_to_call(conversation)
    if chosen:
        snippets = re.findall(r"`([^`]+)`", conversation.user_text)
        plan.calls = [
            Call(f"call_sim{seed:x}{n}" if endpoint != "messages" else f"toolu_sim{seed:x}{n}", name,
                 orjson.dumps(_arguments(schema, snippets)).decode())
            for n, (name, schema) in enumerate(chosen)
        ]
        plan.stop = "tool"
        return plan
    limit = payload.get("max_tokens") or payload.get("max_output_tokens") or payload.get("max_completion_tokens")
    n_words = 12 + seed % 36
    if isinstance(limit, int) and 0 < limit < n_words:
        n_words, plan.stop = limit, "length"
    lead = [SIMULATOR_LABEL, "The", "tool", "answered."] if conversation.after_tool else [SIMULATOR_LABEL]
    plan.words = (lead + [_WORDS[(seed + i * 7919) % len(_WORDS)] for i in range(n_words)])[:n_words]
    return plan


def _tools_to_call(conversation: Conversation) -> list[tuple[str, dict]]:
    tools, choice = conversation.tools, conversation.choice
    if not tools or choice == "none":
        return []
    by_name = dict(tools)
    if choice not in (None, "auto", "required") and choice in by_name:
        return [(choice, by_name[choice])]
    if conversation.after_tool and choice != "required":
        return []
    named = sorted(
        (found.start(), name) for name in by_name
        if (found := re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", conversation.user_text))
    )
    picked = [name for _, name in named] or [tools[0][0]]
    if not conversation.parallel:
        picked = picked[:1]
    return [(name, by_name[name]) for name in picked]


def _arguments(schema: dict, snippets: list[str]) -> dict:
    """Arguments that satisfy the tool's schema: its required properties, the user's snippets as its strings (taken
    in order, so parallel calls share them out)."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = [name for name in schema.get("required") or [] if name in properties]
    out: dict = {}
    for name in required:
        spec = properties[name] if isinstance(properties[name], dict) else {}
        kind = spec.get("type")
        if isinstance(spec.get("enum"), list) and spec["enum"]:
            out[name] = spec["enum"][0]
        elif kind == "string" or kind is None:
            out[name] = snippets.pop(0) if snippets else SIMULATOR_LABEL
        elif kind in ("integer", "number"):
            out[name] = spec.get("minimum", 1)
        elif kind == "boolean":
            out[name] = False
        elif kind == "array":
            out[name] = []
        else:
            out[name] = {}
    return out
