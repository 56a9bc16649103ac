"""OpenAI Responses ⇄ the pivot: a request read from a caller or written for a provider, and a whole answer.

Left out on purpose when a Responses call is translated (they change nothing in the answer): `store`
(a translated call is stored nowhere), `metadata`, `client_metadata`, `prompt_cache_key`,
`prompt_cache_retention`, `user`, `safety_identifier`, `service_tier`, `stream_options`,
`reasoning.summary`. Refused: `previous_response_id` and `conversation` (state only OpenAI holds),
hosted tools (web search, file search, …), `truncation = "auto"`, `background`, stored prompts,
other `include`s than `reasoning.encrypted_content`.

Tools grouped in a `namespace` are offered as `namespace__name` and their calls named back as the
caller knows them. An Anthropic thinking block travels to a Responses caller as a reasoning item
whose `encrypted_content` carries its signature, so a caller that sends it back (as Codex does)
gives Anthropic the signed thinking it requires in a tool-use loop.
"""

from __future__ import annotations

import orjson

from noor_daemon.gateway.translate import ir
from noor_daemon.gateway.translate.ir import Image, Reasoning, Refusal, Text, ToolCall, ToolResult, Untranslatable, bad_field

TITLE = "OpenAI Responses"

NAMESPACE_SEPARATOR = "__"
SIGNED = "noor:anthropic-signature:"
REDACTED = "noor:anthropic-redacted:"
"""Prefixes of `encrypted_content` that carry an Anthropic thinking signature or redacted thinking."""

_KNOWN = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens", "temperature",
    "top_p", "stream", "text", "reasoning", "include", "truncation", "background",
    # hints, left out
    "store", "metadata", "client_metadata", "prompt_cache_key", "prompt_cache_retention", "user", "safety_identifier",
    "service_tier", "stream_options",
})


# -- reading a caller's request ----------------------------------------------------------------


def read_request(payload: dict, to: str) -> ir.Request:
    ir.refuse_unknown(payload, _KNOWN, to)
    if payload.get("truncation") not in (None, "disabled"):
        raise Untranslatable("truncation", f"{to} does not truncate a conversation for you")
    if payload.get("background"):
        raise Untranslatable("background", "a translated call runs in the foreground")
    request = ir.Request(model=payload["model"], turns=[], stream=payload.get("stream") is True)
    instructions = payload.get("instructions")
    if isinstance(instructions, str) and instructions:
        request.system.append(instructions)
    _read_tools(payload, request, to)
    given = payload.get("input")
    if isinstance(given, str):
        request.turns.append(ir.Turn("user", [Text(given)]))
    elif isinstance(given, list):
        _read_items(given, request, to)
    else:
        raise bad_field("input", "must be a string or an array of input items")
    if not request.turns:
        raise bad_field("input", "must hold at least one message")
    _read_options(payload, request, to)
    return request


def _turn(request: ir.Request, role: str) -> ir.Turn:
    if request.turns and request.turns[-1].role == role:
        return request.turns[-1]
    turn = ir.Turn(role, [])  # type: ignore[arg-type]
    request.turns.append(turn)
    return turn


def _read_items(items: list, request: ir.Request, to: str) -> None:
    leading = not request.turns
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_field(where, "must be an object")
        kind = item.get("type")
        role = item.get("role")
        if kind in (None, "message") and role in ("system", "developer"):
            text = ir.text_of(_read_content(item.get("content"), where + ".content", to, "user"), where + ".content", to)
            if leading:
                request.system.append(text)
            else:
                request.turns.append(ir.Turn("system", [Text(text)]))
            continue
        leading = False
        if kind in (None, "message") and role in ("user", "assistant"):
            _turn(request, role).parts.extend(_read_content(item.get("content"), where + ".content", to, role))
        elif kind == "function_call":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("name"), str):
                raise bad_field(where, "must have a call_id and a name")
            name = item["name"]
            if isinstance(item.get("namespace"), str) and item["namespace"]:
                name = item["namespace"] + NAMESPACE_SEPARATOR + name
            arguments = item.get("arguments")
            _turn(request, "assistant").parts.append(ToolCall(item["call_id"], name, arguments if isinstance(arguments, str) else "{}"))
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise bad_field(where + ".call_id", "is required")
            output = item.get("output")
            content = [Text(output)] if isinstance(output, str) else _read_content(output, where + ".output", to, "user")
            _turn(request, "user").parts.append(ToolResult(item["call_id"], content))
        elif kind == "reasoning":
            _turn(request, "assistant").parts.append(_read_reasoning(item))
        else:
            raise Untranslatable(where, f"{to} has no counterpart to a `{kind}` item")


def _read_reasoning(item: dict) -> Reasoning:
    summary = item.get("summary") or []
    text = "".join(s.get("text", "") for s in summary if isinstance(s, dict))
    secret = item.get("encrypted_content")
    if isinstance(secret, str) and secret.startswith(SIGNED):
        return Reasoning(text, secret[len(SIGNED):])
    if isinstance(secret, str) and secret.startswith(REDACTED):
        return Reasoning("", redacted=secret[len(REDACTED):])
    return Reasoning(text)


def _read_content(content: object, where: str, to: str, role: str) -> list:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise bad_field(where, "must be a string or an array of content parts")
    parts: list = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append(Text(part["text"]))
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(Text(part["refusal"]))
        elif kind == "input_image" and role == "user":
            if part.get("file_id"):
                raise Untranslatable(here + ".file_id", "files stored at OpenAI cannot be sent to another provider")
            image = ir.image_from_url(part.get("image_url"), here + ".image_url")
            image.detail = part.get("detail")
            parts.append(image)
        elif isinstance(kind, str):
            raise Untranslatable(here, f"{to} cannot take this content part ({kind})")
        else:
            raise bad_field(here, "must be a content part with a type")
    return parts


def _read_tools(payload: dict, request: ir.Request, to: str) -> None:
    for i, tool in enumerate(payload.get("tools") or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            request.tools.append(_function_tool(tool, f"tools[{i}]"))
        elif kind == "namespace" and isinstance(tool.get("name"), str):
            for j, inner in enumerate(tool.get("tools") or []):
                if not isinstance(inner, dict) or inner.get("type") != "function":
                    raise Untranslatable(f"tools[{i}].tools[{j}]", f"only function tools can be translated to {to}")
                flat = _function_tool(inner, f"tools[{i}].tools[{j}]")
                request.namespaces[tool["name"] + NAMESPACE_SEPARATOR + flat.name] = tool["name"]
                flat.name = tool["name"] + NAMESPACE_SEPARATOR + flat.name
                request.tools.append(flat)
        else:
            raise Untranslatable(f"tools[{i}]", f"the hosted tool `{kind}` runs only at OpenAI; {to} has no counterpart"
                                 " (turn it off in the client, e.g. web_search = \"disabled\" in Codex's config)")


def _function_tool(tool: dict, where: str) -> ir.Tool:
    if not isinstance(tool.get("name"), str):
        raise bad_field(where + ".name", "is required")
    parameters = tool.get("parameters")
    return ir.Tool(tool["name"], tool.get("description"),
                   parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}, tool.get("strict"))


def _read_options(payload: dict, request: ir.Request, to: str) -> None:
    limit = payload.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise bad_field("max_output_tokens", "must be a positive integer")
        request.max_tokens = limit
    request.temperature = payload.get("temperature")
    request.top_p = payload.get("top_p")
    choice = payload.get("tool_choice")
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad_field("tool_choice", "must be auto, none, required or a named function")
        request.tool_choice = ir.ToolChoice(choice)  # type: ignore[arg-type]
    elif isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise Untranslatable("tool_choice", f"only auto, none, required or one named function can be translated to {to}")
        request.tool_choice = ir.ToolChoice("tool", choice["name"])
    if isinstance(payload.get("parallel_tool_calls"), bool):
        request.parallel_tool_calls = payload["parallel_tool_calls"]
    text = payload.get("text")
    if isinstance(text, dict):
        ir.refuse_unknown(text, frozenset({"format", "verbosity"}), to, "text.")
        fmt = text.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_object":
            request.output = ir.OutputFormat("json_object")
        elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            if not isinstance(fmt.get("schema"), dict):
                raise bad_field("text.format.schema", "is required")
            request.output = ir.OutputFormat("json_schema", fmt["schema"], fmt.get("name"), fmt.get("strict"), fmt.get("description"))
        elif fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
            raise bad_field("text.format", "must be text, json_object or json_schema")
        request.verbosity = text.get("verbosity")
    reasoning = payload.get("reasoning")
    if isinstance(reasoning, dict):
        ir.refuse_unknown(reasoning, frozenset({"effort", "summary", "generate_summary"}), to, "reasoning.")
        effort = reasoning.get("effort")
        if effort is not None:
            if effort not in ir.EFFORT_BUDGETS and effort != "none":
                raise bad_field("reasoning.effort", "must be none, minimal, low, medium, high or xhigh")
            request.reasoning_effort = effort
    for include in payload.get("include") or []:
        if include != "reasoning.encrypted_content":
            raise Untranslatable("include", f"`{include}` is OpenAI's own; {to} has no counterpart")
        request.include_reasoning_secrets = True


# -- writing a request for a provider ----------------------------------------------------------


def write_request(request: ir.Request, target: ir.Target) -> dict:
    items: list[dict] = []
    for t, turn in enumerate(request.turns):
        if turn.role == "system":
            items.append({"role": "system", "content": ir.text_of(turn.parts, f"turn {t}", TITLE)})
        else:
            items.extend(_turn_items(turn))
    out: dict = {"model": request.model, "input": items, "store": False}
    if request.system:
        out["instructions"] = "\n\n".join(request.system)
    if request.max_tokens is not None:
        out["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    if request.stop:
        raise Untranslatable("stop", f"{TITLE} has no stop sequences")
    if request.tools:
        out["tools"] = [_write_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            out["tool_choice"] = {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode
        if request.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = request.parallel_tool_calls
    text: dict = {}
    if request.output is not None:
        fmt = request.output
        if fmt.kind == "json_object":
            text["format"] = {"type": "json_object"}
        else:
            spec: dict = {"type": "json_schema", "name": fmt.name or "output", "schema": fmt.schema}
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            if fmt.description:
                spec["description"] = fmt.description
            text["format"] = spec
    if request.verbosity is not None:
        text["verbosity"] = request.verbosity
    if text:
        out["text"] = text
    effort = request.reasoning_effort
    if effort is None and request.reasoning_budget is not None:
        effort = ir.effort_of_budget(request.reasoning_budget)
    if effort is not None and effort != "none":
        out["reasoning"] = {"effort": effort}
    if request.stream:
        out["stream"] = True
    return out


def _turn_items(turn: ir.Turn) -> list[dict]:
    """A turn as input items: its text and images as one message, each tool call or result an item of its own."""
    items: list[dict] = []
    content: list[dict] = []
    for part in turn.parts:
        if isinstance(part, Text):
            content.append({"type": "input_text" if turn.role == "user" else "output_text", "text": part.text})
        elif isinstance(part, Image):
            image: dict = {"type": "input_image", "image_url": ir.image_url(part)}
            if part.detail is not None:
                image["detail"] = part.detail
            content.append(image)
        elif isinstance(part, ToolCall | ToolResult):
            if content:
                items.append({"type": "message", "role": turn.role, "content": content})
                content = []
            if isinstance(part, ToolCall):
                items.append({"type": "function_call", "call_id": part.id, "name": part.name, "arguments": part.arguments})
            else:
                items.append({"type": "function_call_output", "call_id": part.call_id, "output": _output(part)})
        # Reasoning of earlier turns: OpenAI takes back only its own (encrypted) items.
    if content:
        items.append({"type": "message", "role": turn.role, "content": content})
    return items


def _output(result: ToolResult) -> str | list:
    if all(isinstance(p, Text) for p in result.content):
        return "".join(p.text for p in result.content)  # type: ignore[union-attr]
    return [
        {"type": "input_text", "text": p.text} if isinstance(p, Text) else {"type": "input_image", "image_url": ir.image_url(p)}
        for p in result.content
    ]


def _write_tool(tool: ir.Tool) -> dict:
    out: dict = {"type": "function", "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parameters"] = tool.parameters
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


# -- a whole answer ----------------------------------------------------------------------------


def read_answer(body: dict) -> ir.Answer:
    parts: list = []
    refused = False
    for item in body.get("output") or []:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    parts.append(Text(str(part.get("text") or "")))
                elif part.get("type") == "refusal":
                    refused = True
                    parts.append(Refusal(str(part.get("refusal") or "")))
        elif kind == "function_call":
            name = str(item.get("name") or "")
            parts.append(ToolCall(str(item.get("call_id") or item.get("id")), name, str(item.get("arguments") or "")))
        elif kind == "reasoning":
            texts = [s.get("text", "") for s in item.get("summary") or [] if isinstance(s, dict)]
            texts += [c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict)]
            if any(texts):
                parts.append(Reasoning("".join(texts)))
    return ir.Answer(str(body.get("id") or "resp_noor"), str(body.get("model") or ""), parts, _stop(body, parts, refused),
                     usage=read_usage(body.get("usage")),
                     created=body.get("created_at") if isinstance(body.get("created_at"), int) else 0)


def _stop(body: dict, parts: list, refused: bool) -> str:
    if refused:
        return ir.STOP_FILTER
    if body.get("status") == "incomplete":
        reason = (body.get("incomplete_details") or {}).get("reason")
        return ir.STOP_FILTER if reason == "content_filter" else ir.STOP_LENGTH
    return ir.STOP_TOOL if any(isinstance(p, ToolCall) for p in parts) else ir.STOP_END


def read_usage(usage: object) -> ir.Usage | None:
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    details = usage.get("input_tokens_details") if isinstance(usage.get("input_tokens_details"), dict) else {}
    out = usage.get("output_tokens_details") if isinstance(usage.get("output_tokens_details"), dict) else {}
    return ir.Usage(usage["input_tokens"], _int(usage.get("output_tokens")), _int(details.get("cached_tokens")),
                    reasoning_tokens=out.get("reasoning_tokens") if isinstance(out.get("reasoning_tokens"), int) else None)


def write_usage(usage: ir.Usage) -> dict:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def item_ids(response_id: str) -> str:
    """The stem of the ids of a translated response's items (`msg_…`, `fc_…`, `rs_…`)."""
    return response_id.split("_", 1)[-1].split("-", 1)[-1] or "noor"


def call_name(name: str, request: ir.Request) -> tuple[str, str | None]:
    """A tool call's name as the caller knows it, and its namespace when the caller grouped the tool in one."""
    namespace = request.namespaces.get(name)
    if namespace is None:
        return name, None
    return name[len(namespace) + len(NAMESPACE_SEPARATOR):], namespace


def function_call_item(ident: str, part: ToolCall, request: ir.Request, status: str = "completed") -> dict:
    name, namespace = call_name(part.name, request)
    item = {"id": ident, "type": "function_call", "status": status, "call_id": part.id, "name": name, "arguments": part.arguments}
    if namespace is not None:
        item["namespace"] = namespace
    return item


def reasoning_item(ident: str, part: Reasoning, request: ir.Request) -> dict:
    item: dict = {"id": ident, "type": "reasoning", "summary": [{"type": "summary_text", "text": part.text}] if part.text else []}
    if request.include_reasoning_secrets:
        if part.redacted is not None:
            item["encrypted_content"] = REDACTED + part.redacted
        elif part.signature:
            item["encrypted_content"] = SIGNED + part.signature
    return item


def response_document(answer_id: str, model: str, created: int, request: ir.Request, status: str, output: list,
                      usage: ir.Usage | None, stop: str | None = None) -> dict:
    incomplete = None
    if status == "incomplete":
        incomplete = {"reason": "content_filter" if stop == ir.STOP_FILTER else "max_output_tokens"}
    return {
        "id": answer_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": None,
        "max_output_tokens": request.max_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls if request.parallel_tool_calls is not None else True,
        "previous_response_id": None,
        "reasoning": {"effort": request.reasoning_effort, "summary": None},
        "store": False,
        "temperature": request.temperature,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": request.top_p,
        "truncation": "disabled",
        "usage": write_usage(usage) if usage is not None else None,
        "metadata": {},
    }


def status_of(stop: str) -> str:
    return "incomplete" if stop in (ir.STOP_LENGTH, ir.STOP_FILTER) else "completed"


def write_answer(answer: ir.Answer, request: ir.Request, now: int) -> bytes:
    stem = item_ids(answer.id)
    output: list[dict] = []
    message: dict | None = None
    refused = False
    for part in answer.parts:  # item ids as the streamed answer names them: by their place in `output`
        n = len(output)
        if isinstance(part, Text | Refusal):
            if message is None:
                message = {"id": f"msg_{stem}_{n}", "type": "message", "status": "completed", "role": "assistant", "content": []}
                output.append(message)
            if isinstance(part, Refusal):
                refused = True
                message["content"].append({"type": "refusal", "refusal": part.text})
            elif message["content"] and message["content"][-1]["type"] == "output_text":
                message["content"][-1]["text"] += part.text
            else:
                message["content"].append({"type": "output_text", "text": part.text, "annotations": [], "logprobs": []})
            continue
        message = None
        if isinstance(part, ToolCall):
            output.append(function_call_item(f"fc_{stem}_{n}", part, request))
        elif isinstance(part, Reasoning):
            output.append(reasoning_item(f"rs_{stem}_{n}", part, request))
    status = "completed" if refused else status_of(answer.stop)
    document = response_document(answer.id, answer.model, answer.created or now, request, status, output, answer.usage, answer.stop)
    return orjson.dumps(document)


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
