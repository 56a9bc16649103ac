"""Anthropic Messages ⇄ the pivot: a request read from a caller or written for a provider, and a whole answer.

Left out on purpose when a Messages call is translated (they change nothing in the answer):
`cache_control` (on the request and on blocks), `metadata`, `service_tier`, `output_config.effort`
(how hard to try, which a provider without it decides itself), adaptive or disabled `thinking` (the
provider's default), and `context_management` edits that clear thinking (thinking of earlier turns
is not sent to another provider anyway). Refused: `top_k`, documents, server tools, containers,
MCP servers. Thinking of earlier turns reaches only Anthropic (it checks its own signatures).
"""

from __future__ import annotations

import orjson

from noor_daemon.gateway.translate import ir
from noor_daemon.gateway.translate.ir import Image, Reasoning, Refusal, Text, ToolCall, ToolResult, Untranslatable, bad_field

TITLE = "Anthropic Messages"

MID_CONVERSATION_SYSTEM_BETA = "mid-conversation-system-2026-04-07"
"""The beta under which Anthropic takes `system` messages inside the conversation (Claude Code sends them)."""

_KNOWN = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p", "tools",
    "tool_choice", "thinking", "output_config", "context_management",
    # hints, left out
    "metadata", "cache_control", "service_tier",
})

STOP_REASONS = {"end_turn": ir.STOP_END, "max_tokens": ir.STOP_LENGTH, "tool_use": ir.STOP_TOOL,
                "stop_sequence": ir.STOP_SEQUENCE, "refusal": ir.STOP_FILTER, "pause_turn": ir.STOP_END,
                "model_context_window_exceeded": ir.STOP_LENGTH}
STOP_REASONS_OUT = {ir.STOP_END: "end_turn", ir.STOP_LENGTH: "max_tokens", ir.STOP_TOOL: "tool_use",
                    ir.STOP_SEQUENCE: "stop_sequence", ir.STOP_FILTER: "refusal"}

_SERVER_TOOL_PREFIXES = ("web_search_", "web_fetch_", "bash_", "text_editor_", "computer_", "code_execution_", "memory_",
                         "tool_search_", "mcp_")


# -- reading a caller's request ----------------------------------------------------------------


def read_request(payload: dict, to: str) -> ir.Request:
    ir.refuse_unknown(payload, _KNOWN, to)
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_field("messages", "must be a non-empty array of messages")
    request = ir.Request(model=payload["model"], turns=[], stream=payload.get("stream") is True)
    system = payload.get("system")
    if isinstance(system, str):
        if system:
            request.system.append(system)
    elif isinstance(system, list):
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise bad_field(f"system[{i}]", "must be a text block")
            if not _SYSTEM_FIELDS.issuperset(block):
                ir.refuse_unknown(block, _SYSTEM_FIELDS, to, f"system[{i}].")
            request.system.append(block["text"])
    elif system is not None:
        raise bad_field("system", "must be a string or an array of text blocks")
    turns = request.turns
    for i, message in enumerate(messages):
        # Where a field is (`messages[3].content[1]`) is written only for an error: a conversation has many blocks.
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROLES:
            raise bad_field(f"messages[{i}]", "must be a message with role user, assistant or system")
        if not _MESSAGE_FIELDS.issuperset(message):
            ir.refuse_unknown(message, _MESSAGE_FIELDS, to, f"messages[{i}].")
        content = message.get("content")
        parts = [Text(content)] if isinstance(content, str) else _read_content(content, role, i, to)
        if role == "system":
            turns.append(ir.Turn("system", parts))
        elif turns and turns[-1].role == role:
            turns[-1].parts.extend(parts)
        else:
            turns.append(ir.Turn(role, parts))
    _read_options(payload, request, to)
    return request


_ROLES = ("user", "assistant", "system")
_MESSAGE_FIELDS = frozenset({"role", "content"})
_SYSTEM_FIELDS = frozenset({"type", "text", "cache_control"})
_TEXT_FIELDS = frozenset({"type", "text", "cache_control", "citations"})
_TOOL_USE_FIELDS = frozenset({"type", "id", "name", "input", "cache_control", "caller"})
_TOOL_RESULT_FIELDS = frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"})
_TOOL_FIELDS = frozenset({"type", "name", "description", "input_schema", "cache_control", "strict"})
_OUTPUT_CONFIG_FIELDS = frozenset({"effort", "format"})


def _read_content(content: object, role: str, i: int, to: str) -> list:
    """The blocks of `messages[i].content` (not a string)."""
    if not isinstance(content, list):
        raise bad_field(f"messages[{i}].content", "must be a string or an array of content blocks")
    parts: list = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            if not _TEXT_FIELDS.issuperset(block):
                ir.refuse_unknown(block, _TEXT_FIELDS, to, f"messages[{i}].content[{j}].")
            parts.append(Text(block["text"]))
        elif kind == "tool_result" and role == "user":
            parts.append(_read_tool_result(block, f"messages[{i}].content[{j}]", to))
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise bad_field(f"messages[{i}].content[{j}]", "must have an id and a name")
            if not _TOOL_USE_FIELDS.issuperset(block):
                ir.refuse_unknown(block, _TOOL_USE_FIELDS, to, f"messages[{i}].content[{j}].")
            parts.append(ToolCall(block["id"], block["name"], orjson.dumps(block.get("input") or {}).decode()))
        elif kind == "image" and role != "assistant":
            parts.append(_read_image(block, f"messages[{i}].content[{j}]", to))
        elif kind == "thinking" and role == "assistant":
            parts.append(Reasoning(str(block.get("thinking") or ""), block.get("signature") or None))
        elif kind == "redacted_thinking" and role == "assistant":
            parts.append(Reasoning("", redacted=str(block.get("data") or "")))
        elif isinstance(kind, str):
            raise Untranslatable(f"messages[{i}].content[{j}]", f"{to} cannot take a `{kind}` block here")
        else:
            raise bad_field(f"messages[{i}].content[{j}]", "must be a content block with a type")
    return parts


def _read_image(block: dict, where: str, to: str) -> Image:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad_field(where + ".source", "is required")
    if source.get("type") == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        return Image(media_type=source["media_type"], data=source["data"])
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return Image(url=source["url"])
    raise Untranslatable(where + ".source", f"only base64 and url images can be translated to {to}")


def _read_tool_result(block: dict, where: str, to: str) -> ToolResult:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise bad_field(where + ".tool_use_id", "is required")
    if not _TOOL_RESULT_FIELDS.issuperset(block):
        ir.refuse_unknown(block, _TOOL_RESULT_FIELDS, to, where + ".")
    content = block.get("content")
    parts: list = []
    if isinstance(content, str):
        parts.append(Text(content))
    elif isinstance(content, list):
        for k, inner in enumerate(content):
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind == "text" and isinstance(inner.get("text"), str):
                parts.append(Text(inner["text"]))
            elif kind == "image":
                parts.append(_read_image(inner, f"{where}.content[{k}]", to))
            else:
                raise Untranslatable(f"{where}.content[{k}]", f"{to} takes text and images in a tool result")
    return ToolResult(call_id, parts, block.get("is_error") is True)


def _read_options(payload: dict, request: ir.Request, to: str) -> None:
    limit = payload.get("max_tokens")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise bad_field("max_tokens", "is required: a positive integer")
    request.max_tokens = limit
    request.temperature = payload.get("temperature")
    request.top_p = payload.get("top_p")
    stop = payload.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad_field("stop_sequences", "must be an array of strings")
        request.stop = stop or None
    for i, tool in enumerate(payload.get("tools") or []):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise bad_field(f"tools[{i}]", "must be a tool with a name")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise Untranslatable(f"tools[{i}]", f"the server tool `{kind}` runs only at Anthropic; {to} has no counterpart")
        if not _TOOL_FIELDS.issuperset(tool):
            ir.refuse_unknown(tool, _TOOL_FIELDS, to, f"tools[{i}].")
        schema = tool.get("input_schema")
        request.tools.append(ir.Tool(tool["name"], tool.get("description"), schema if isinstance(schema, dict) else {"type": "object"},
                                     tool.get("strict")))
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        mode = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}.get(choice.get("type"))
        if mode is None:
            raise bad_field("tool_choice.type", "must be auto, any, tool or none")
        if mode == "tool" and not isinstance(choice.get("name"), str):
            raise bad_field("tool_choice.name", "is required with type tool")
        request.tool_choice = ir.ToolChoice(mode, choice.get("name"))  # type: ignore[arg-type]
        if choice.get("disable_parallel_tool_use") is True:
            request.parallel_tool_calls = False
    elif choice is not None:
        raise bad_field("tool_choice", "must be an object")
    thinking = payload.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1:
            raise bad_field("thinking.budget_tokens", "must be a positive integer")
        request.reasoning_budget = budget
        request.reasoning_effort = ir.effort_of_budget(budget)
    config = payload.get("output_config")
    if isinstance(config, dict):
        ir.refuse_unknown(config, _OUTPUT_CONFIG_FIELDS, to, "output_config.")
        fmt = config.get("format")
        if isinstance(fmt, dict):
            if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
                raise bad_field("output_config.format", "must be a json_schema format with a schema")
            request.output = ir.OutputFormat("json_schema", fmt["schema"], strict=True)
    management = payload.get("context_management")
    if isinstance(management, dict):
        for k, edit in enumerate(management.get("edits") or []):
            if not (isinstance(edit, dict) and str(edit.get("type", "")).startswith("clear_thinking_")):
                raise Untranslatable(f"context_management.edits[{k}]", f"{to} has no context editing")


# -- writing a request for a provider ----------------------------------------------------------


def write_request(request: ir.Request, target: ir.Target) -> tuple[dict, dict[str, str]]:
    """The request and the headers it needs (a beta, for system messages inside the conversation)."""
    headers: dict[str, str] = {"anthropic-version": "2023-06-01"}
    messages: list[dict] = []
    for t, turn in enumerate(request.turns):
        if turn.role == "system":
            messages.append({"role": "system", "content": ir.text_of(turn.parts, f"turn {t}", TITLE)})
            headers["anthropic-beta"] = MID_CONVERSATION_SYSTEM_BETA
            continue
        blocks = [b for part in turn.parts if (b := _block(part, t)) is not None]
        if turn.role == "user" and len(blocks) > 1:
            blocks.sort(key=_not_a_result)  # results first, as Anthropic requires
        if not blocks:
            continue
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": turn.role, "content": blocks})
    out: dict = {"model": request.model, "messages": messages}
    budget = _thinking_budget(request)
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = target.default_max_tokens + (budget or 0)
    elif budget is not None:
        if max_tokens <= 1024:
            raise Untranslatable("reasoning", f"{TITLE} thinks only with more than 1024 max tokens")
        budget = min(budget, max_tokens - 1)
    out["max_tokens"] = max_tokens
    if request.system:
        out["system"] = request.system[0] if len(request.system) == 1 else [{"type": "text", "text": s} for s in request.system]
    if request.temperature is not None:
        if not 0 <= request.temperature <= 1:
            raise Untranslatable("temperature", f"{TITLE} takes a temperature from 0 to 1")
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    if request.stop:
        out["stop_sequences"] = request.stop
    if request.tools:
        out["tools"] = [_tool(tool) for tool in request.tools]
    choice = _tool_choice(request)
    if choice is not None:
        out["tool_choice"] = choice
    if request.output is not None:
        if request.output.kind != "json_schema":
            raise Untranslatable("response_format", f"{TITLE} has no JSON mode without a schema; give a json_schema")
        out["output_config"] = {"format": {"type": "json_schema", "schema": request.output.schema}}
    if budget is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if request.verbosity not in (None, "medium"):
        raise Untranslatable("verbosity", f"{TITLE} has no verbosity setting")
    if request.stream:
        out["stream"] = True
    return out, headers


def _not_a_result(block: dict) -> bool:
    return block["type"] != "tool_result"


def _thinking_budget(request: ir.Request) -> int | None:
    if request.reasoning_budget is not None:
        return max(1024, request.reasoning_budget)
    effort = request.reasoning_effort
    if effort is None or effort in ("none", "minimal"):
        return None
    return ir.EFFORT_BUDGETS[effort]


def _block(part: object, turn: int) -> dict | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Image):
        return _image(part, f"turn {turn}")
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name,
                "input": ir.tool_arguments_object(part.arguments, f"the arguments of tool call {part.id}")}
    if isinstance(part, ToolResult):
        content = [_image(p, "a tool result") if isinstance(p, Image) else {"type": "text", "text": p.text} for p in part.content]
        block: dict = {"type": "tool_result", "tool_use_id": part.call_id, "content": content}
        if part.is_error:
            block["is_error"] = True
        return block
    if isinstance(part, Reasoning):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        if part.signature:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        return None  # unsigned reasoning (another provider's) cannot be given to Anthropic
    return None


def _image(image: Image, where: str) -> dict:
    if image.detail not in (None, "auto"):
        raise Untranslatable(f"{where}: image detail", f"{TITLE} has no image detail setting")
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}


def _tool(tool: ir.Tool) -> dict:
    out: dict = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = tool.parameters
    if tool.strict:
        out["strict"] = True
    return out


def _tool_choice(request: ir.Request) -> dict | None:
    choice = request.tool_choice
    out: dict | None = None
    if choice is not None:
        out = {"type": {"auto": "auto", "required": "any", "none": "none", "tool": "tool"}[choice.mode]}
        if choice.mode == "tool":
            out["name"] = choice.name
    if request.parallel_tool_calls is False and request.tools:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


# -- a whole answer ----------------------------------------------------------------------------


def read_answer(body: dict) -> ir.Answer:
    parts: list = []
    for block in body.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(Text(str(block.get("text") or "")))
        elif kind == "tool_use":
            parts.append(ToolCall(str(block.get("id")), str(block.get("name")), orjson.dumps(block.get("input") or {}).decode()))
        elif kind == "thinking":
            parts.append(Reasoning(str(block.get("thinking") or ""), block.get("signature") or None))
        elif kind == "redacted_thinking":
            parts.append(Reasoning("", redacted=str(block.get("data") or "")))
    stop = STOP_REASONS.get(body.get("stop_reason") or "end_turn", ir.STOP_END)
    sequence = body.get("stop_sequence")
    return ir.Answer(str(body.get("id") or "msg_noor"), str(body.get("model") or ""), parts, stop,
                     sequence if isinstance(sequence, str) else None, read_usage(body.get("usage")))


def read_usage(usage: object) -> ir.Usage | None:
    if not isinstance(usage, dict):
        return None
    plain, output = usage.get("input_tokens"), usage.get("output_tokens")
    if not (isinstance(plain, int) or isinstance(output, int)):
        return None
    read, write = _int(usage.get("cache_read_input_tokens")), _int(usage.get("cache_creation_input_tokens"))
    return ir.Usage(_int(plain) + read + write, _int(output), read, write)


def write_usage(usage: ir.Usage) -> dict:
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cache_read - usage.cache_write),
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "output_tokens": usage.output_tokens,
    }


def write_answer(answer: ir.Answer, request: ir.Request | None, now: int) -> bytes:
    content: list[dict] = []
    for part in answer.parts:
        if isinstance(part, (Text, Refusal)):  # a refusal is Claude's words, with stop_reason "refusal"
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += part.text
            else:
                content.append({"type": "text", "text": part.text})
        elif isinstance(part, Reasoning):
            if part.redacted is not None:
                content.append({"type": "redacted_thinking", "data": part.redacted})
            else:
                content.append({"type": "thinking", "thinking": part.text, "signature": part.signature or ""})
        elif isinstance(part, ToolCall):
            try:
                arguments = orjson.loads(part.arguments) if part.arguments.strip() else {}
            except orjson.JSONDecodeError:
                raise ValueError("the provider's tool arguments are not JSON") from None
            content.append({"type": "tool_use", "id": part.id, "name": part.name, "input": arguments})
    out = {
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": STOP_REASONS_OUT[answer.stop],
        "stop_sequence": answer.stop_sequence,
        "usage": write_usage(answer.usage or ir.Usage()),
    }
    return orjson.dumps(out)


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
