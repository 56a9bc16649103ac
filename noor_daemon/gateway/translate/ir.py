"""What a conversation call means, independent of its wire format: the pivot every translation goes through.

Each format module reads its own shape into these types and writes them back out (`chat.py`,
`responses.py`, `messages.py`), so any of the three formats reaches any other with one reader
and one writer each. A field a reader meets that no type here can hold, or that the writer's
format cannot express, is refused with a 400 that names it (`Untranslatable`): nothing is
dropped silently. The few hints that change nothing in an answer (prompt-cache markers,
metadata for the provider's abuse monitoring) are left out on purpose and listed in each reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from noor_daemon.domain.errors import GatewayError

Role = Literal["system", "user", "assistant"]

STOP_END = "end"
STOP_LENGTH = "length"
STOP_TOOL = "tool"
STOP_SEQUENCE = "stop_sequence"
STOP_FILTER = "filter"
"""Why an answer ended, in the pivot's words; each format maps its own reasons onto these."""


class Untranslatable(GatewayError):
    """A 400 naming the field (in the caller's terms) that the other format cannot express."""

    def __init__(self, field_name: str, why: str) -> None:
        super().__init__(400, "invalid_request", f"`{field_name}` cannot be translated: {why}", code="untranslatable_field",
                         param=field_name)


def bad_field(field_name: str, why: str) -> GatewayError:
    """The caller's own request is malformed (so it would be refused by its own API too)."""
    return GatewayError(400, "invalid_request", f"`{field_name}` {why}", code="invalid_request", param=field_name)


# -- content -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Refusal:
    """OpenAI's refusal: the model's words declining the request (Anthropic says it with `stop_reason: refusal`)."""

    text: str


@dataclass(slots=True)
class Image:
    url: str | None = None
    """An http(s) URL; or None with `data` set."""
    media_type: str | None = None
    data: str | None = None
    """Base64, without the `data:` prefix."""
    detail: str | None = None
    """OpenAI's resolution hint (low, high, auto); Anthropic has none."""


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """The arguments as JSON text (OpenAI's form); Anthropic's `input` object is dumped to it."""


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image]
    is_error: bool = False


@dataclass(slots=True)
class Reasoning:
    text: str
    signature: str | None = None
    """Anthropic's signature of a thinking block, kept so it can be sent back to Anthropic."""
    redacted: str | None = None
    """Anthropic's `redacted_thinking` data (then `text` is empty)."""


Part = Text | Refusal | Image | ToolCall | ToolResult | Reasoning


@dataclass(slots=True)
class Turn:
    role: Role
    parts: list[Part]


# -- a request ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None
    parameters: dict
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(slots=True)
class OutputFormat:
    kind: Literal["json_object", "json_schema"]
    schema: dict | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(slots=True)
class Request:
    model: str
    turns: list[Turn]
    system: list[str] = field(default_factory=list)
    """Instructions that lead the conversation (Anthropic's `system`, leading system/developer messages)."""
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    stream: bool = False
    output: OutputFormat | None = None
    reasoning_effort: str | None = None
    """low | medium | high (more or less thinking), or `none` for thinking turned off."""
    reasoning_budget: int | None = None
    """Anthropic's explicit thinking budget, when the caller gave one."""
    verbosity: str | None = None
    include_reasoning_secrets: bool = False
    """Responses callers asking `include: ["reasoning.encrypted_content"]`: signatures come back there."""
    namespaces: dict[str, str] = field(default_factory=dict)
    """A flattened tool's name → its Responses namespace, to name calls back as the caller knows them."""


# -- an answer ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    """Every input token, prompt-cache reads and writes included (OpenAI's `prompt_tokens`)."""
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning_tokens: int | None = None


@dataclass(slots=True)
class Answer:
    id: str
    model: str
    parts: list[Part]
    stop: str = STOP_END
    stop_sequence: str | None = None
    usage: Usage | None = None
    created: int = 0


def tool_arguments_object(arguments: str, where: str) -> dict:
    """Anthropic's `input` from OpenAI's JSON text; a caller's malformed arguments are its own 400."""
    import orjson

    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise bad_field(where, "is not valid JSON; Anthropic Messages needs tool arguments as a JSON object") from None
    if not isinstance(value, dict):
        raise bad_field(where, "must be a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class Target:
    """What a writer needs to know of the provider it writes for."""

    kind: str = "openai"
    """The provider's kind (`openai`, `vllm`, …): OpenAI itself wants `max_completion_tokens`, other servers `max_tokens`."""
    default_max_tokens: int = 4096


def given(payload: dict, name: str) -> object:
    """A field's value, None when absent or null (the APIs treat both alike)."""
    return payload.get(name)


def refuse_unknown(payload: dict, known: frozenset[str], to: str, prefix: str = "") -> None:
    """Every field present (and not null) must be one the reader understands or leaves out on purpose."""
    if known.issuperset(payload):  # the usual case, in one C call
        return
    for name, value in payload.items():
        if value is not None and name not in known:
            raise Untranslatable(prefix + name, f"{to} has no counterpart to it")


def image_from_url(url: object, where: str) -> Image:
    """An OpenAI `image_url` (an http(s) URL or a `data:` URL) as the pivot's image."""
    if not isinstance(url, str) or not url:
        raise bad_field(where, "must be an image URL or a data: URL")
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = head[5:].split(";", 1)[0]
        if ";base64" not in head or not media_type or not data:
            raise bad_field(where, "must be a base64 data: URL (data:image/png;base64,…)")
        return Image(media_type=media_type, data=data)
    return Image(url=url)


def image_url(image: Image) -> str:
    return image.url if image.url is not None else f"data:{image.media_type};base64,{image.data}"


def text_of(parts: list, where: str, to: str) -> str:
    """Text-only content (a tool result, a system message) as one string; an image there cannot be expressed."""
    texts = []
    for part in parts:
        if isinstance(part, Text):
            texts.append(part.text)
        else:
            raise Untranslatable(where, f"{to} takes only text here")
    return "".join(texts) if len(texts) != 1 else texts[0]


EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}
"""Anthropic thinking budgets for OpenAI's reasoning efforts."""


def effort_of_budget(budget: int) -> str:
    """OpenAI's reasoning effort for an Anthropic thinking budget."""
    if budget <= 4096:
        return "low"
    if budget <= 16384:
        return "medium"
    return "high"
