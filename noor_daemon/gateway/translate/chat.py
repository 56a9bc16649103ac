"""OpenAI Chat Completions ⇄ the pivot: a request read from a caller or written for a provider, and a whole answer.

Left out on purpose when a Chat Completions call is translated (they change nothing in the answer):
`user`, `safety_identifier`, `prompt_cache_key`, `prompt_cache_retention`, `store`, `metadata`,
`service_tier`, `stream_options` (the gateway always reads the provider's usage). Refused, as no other
format has them: `n` above 1, `logprobs`, `top_logprobs`, `logit_bias`, `seed`, non-zero
`frequency_penalty`/`presence_penalty`, audio, `prediction`, `web_search_options`, legacy `functions`.
"""

from __future__ import annotations

import orjson

from noor_daemon.gateway.translate import ir
from noor_daemon.gateway.translate.ir import (
    STOP_END,
    STOP_FILTER,
    STOP_LENGTH,
    STOP_TOOL,
    Image,
    Reasoning,
    Refusal,
    Text,
    ToolCall,
    ToolResult,
    Untranslatable,
    bad_field,
)

TITLE = "OpenAI Chat Completions"

_KNOWN = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream", "tools",
    "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "verbosity",
    # checked for their default values below
    "n", "logprobs", "frequency_penalty", "presence_penalty", "modalities",
    # hints, left out
    "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "store", "metadata", "service_tier",
    "stream_options",
})

STOP_REASONS = {"stop": STOP_END, "length": STOP_LENGTH, "tool_calls": STOP_TOOL, "function_call": STOP_TOOL,
                "content_filter": STOP_FILTER}
FINISH_REASONS = {STOP_END: "stop", ir.STOP_SEQUENCE: "stop", STOP_LENGTH: "length", STOP_TOOL: "tool_calls",
                  STOP_FILTER: "content_filter"}


# -- reading a caller's request ----------------------------------------------------------------


def read_request(payload: dict, to: str) -> ir.Request:
    ir.refuse_unknown(payload, _KNOWN, to)
    if not _CHECKED.isdisjoint(payload):  # fields only their defaults can be translated
        if payload.get("n") not in (None, 1):
            raise Untranslatable("n", f"{to} gives one answer per call")
        if payload.get("logprobs"):
            raise Untranslatable("logprobs", f"{to} does not return log probabilities here")
        for name in ("frequency_penalty", "presence_penalty"):
            if payload.get(name) not in (None, 0, 0.0):
                raise Untranslatable(name, f"{to} has no {name.replace('_', ' ')}")
        if payload.get("modalities") not in (None, ["text"]):
            raise Untranslatable("modalities", f"{to} answers in text only")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_field("messages", "must be a non-empty array of messages")
    request = ir.Request(model=payload["model"], turns=[], stream=payload.get("stream") is True)
    turns = request.turns
    leading = True
    for i, message in enumerate(messages):
        # Where a field is (`messages[3].content`) is written only for an error: a conversation has many messages.
        if not isinstance(message, dict):
            raise bad_field(f"messages[{i}]", "must be an object")
        role = message.get("role")
        fields = _MESSAGE_FIELDS.get(role, _ROLE_ONLY) if isinstance(role, str) else _ROLE_ONLY
        if not fields.issuperset(message):
            ir.refuse_unknown(message, fields, to, f"messages[{i}].")
        content = message.get("content")
        if role in ("system", "developer"):
            text = content if isinstance(content, str) else _plain_text(content, f"messages[{i}].content", to)
            if leading:
                request.system.append(text)
            else:
                turns.append(ir.Turn("system", [Text(text)]))
            continue
        leading = False
        if role == "user":
            parts = [Text(content)] if isinstance(content, str) else _user_parts(content, f"messages[{i}].content", to)
            _append(turns, "user", parts)
        elif role == "assistant":
            _append(turns, "assistant", _assistant_parts(message, i))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise bad_field(f"messages[{i}].tool_call_id", "is required on a tool message")
            parts = [Text(content)] if isinstance(content, str) else _tool_content(content, f"messages[{i}].content", to)
            _append(turns, "user", [ToolResult(call_id, parts)])
        else:
            raise bad_field(f"messages[{i}].role", "must be system, developer, user, assistant or tool")
    _read_options(payload, request, to)
    return request


_CHECKED = frozenset({"n", "logprobs", "frequency_penalty", "presence_penalty", "modalities"})
_ROLE_ONLY = frozenset({"role"})
_MESSAGE_FIELDS = {
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "refusal", "reasoning_content", "reasoning"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def _append(turns: list[ir.Turn], role: str, parts: list) -> None:
    """Consecutive turns of one role are one turn (tool results and the user's next words, say)."""
    if turns and turns[-1].role == role:
        turns[-1].parts.extend(parts)
    else:
        turns.append(ir.Turn(role, parts))  # type: ignore[arg-type]


def _plain_text(content: object, where: str, to: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = _user_parts(content, where, to)
        return ir.text_of(parts, where, to)
    raise bad_field(where, "must be a string or an array of text parts")


def _user_parts(content: object, where: str, to: str) -> list:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise bad_field(where, "must be a string or an array of content parts")
    parts: list = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(Text(part["text"]))
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            spec = part["image_url"]
            image = ir.image_from_url(spec.get("url"), f"{where}[{j}].image_url.url")
            image.detail = spec.get("detail")
            parts.append(image)
        elif kind in ("input_audio", "file"):
            raise Untranslatable(f"{where}[{j}]", f"{to} cannot take this content part ({kind})")
        else:
            raise bad_field(f"{where}[{j}]", "must be a text or image_url content part")
    return parts


def _tool_content(content: object, where: str, to: str) -> list:
    if isinstance(content, str):
        return [Text(content)]
    if isinstance(content, list):
        return _user_parts(content, where, to)
    raise bad_field(where, "must be a string or an array of text parts")


def _assistant_parts(message: dict, i: int) -> list:
    parts: list = []
    thought = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thought, str) and thought:
        parts.append(Reasoning(thought))
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(Text(part["text"]))
            elif isinstance(part, dict) and part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                parts.append(Text(part["refusal"]))
            else:
                raise bad_field(f"messages[{i}].content[{j}]", "must be a text or refusal content part")
    elif content is not None:
        raise bad_field(f"messages[{i}].content", "must be a string, an array of parts or null")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Text(refusal))
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise bad_field(f"messages[{i}].tool_calls", "must be an array")
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not isinstance(call.get("id"), str):
                raise bad_field(f"messages[{i}].tool_calls[{j}]", "must have an id and a function with a name")
            arguments = function.get("arguments")
            parts.append(ToolCall(call["id"], function["name"], arguments if isinstance(arguments, str) else "{}"))
    return parts


def _read_options(payload: dict, request: ir.Request, to: str) -> None:
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise bad_field("max_tokens", "must be a positive integer")
        request.max_tokens = limit
    request.temperature = payload.get("temperature")
    request.top_p = payload.get("top_p")
    stop = payload.get("stop")
    if isinstance(stop, str):
        request.stop = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        request.stop = stop or None
    elif stop is not None:
        raise bad_field("stop", "must be a string or an array of strings")
    for i, tool in enumerate(payload.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise Untranslatable(f"tools[{i}]", f"only function tools can be translated to {to}")
        if not isinstance(function.get("name"), str):
            raise bad_field(f"tools[{i}].function.name", "is required")
        parameters = function.get("parameters")
        request.tools.append(ir.Tool(function["name"], function.get("description"),
                                     parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}},
                                     function.get("strict")))
    choice = payload.get("tool_choice")
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad_field("tool_choice", "must be auto, none, required or a named function")
        request.tool_choice = ir.ToolChoice(choice)  # type: ignore[arg-type]
    elif isinstance(choice, dict):
        function = choice.get("function")
        if choice.get("type") != "function" or not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise Untranslatable("tool_choice", f"only auto, none, required or one named function can be translated to {to}")
        request.tool_choice = ir.ToolChoice("tool", function["name"])
    if isinstance(payload.get("parallel_tool_calls"), bool):
        request.parallel_tool_calls = payload["parallel_tool_calls"]
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        request.output = ir.OutputFormat("json_object")
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        if not isinstance(spec.get("schema"), dict):
            raise bad_field("response_format.json_schema.schema", "is required")
        request.output = ir.OutputFormat("json_schema", spec["schema"], spec.get("name"), spec.get("strict"), spec.get("description"))
    elif fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise bad_field("response_format", "must be text, json_object or json_schema")
    effort = payload.get("reasoning_effort")
    if effort is not None:
        if effort not in ir.EFFORT_BUDGETS and effort != "none":
            raise bad_field("reasoning_effort", "must be none, minimal, low, medium, high or xhigh")
        request.reasoning_effort = effort
    request.verbosity = payload.get("verbosity")


# -- writing a request for a provider ----------------------------------------------------------


def write_request(request: ir.Request, target: ir.Target) -> dict:
    messages: list[dict] = []
    if request.system:
        messages.append({"role": "system", "content": "\n\n".join(request.system)})
    for t, turn in enumerate(request.turns):
        if turn.role == "system":
            messages.append({"role": "system", "content": ir.text_of(turn.parts, f"turn {t}", TITLE)})
        elif turn.role == "user":
            _write_user(turn, messages)
        else:
            _write_assistant(turn, messages)
    out: dict = {"model": request.model, "messages": messages}
    if request.max_tokens is not None:
        out["max_completion_tokens" if target.kind in ("openai", "azure") else "max_tokens"] = request.max_tokens
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    if request.stop:
        out["stop"] = request.stop
    if request.tools:
        out["tools"] = [_write_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            out["tool_choice"] = {"type": "function", "function": {"name": choice.name}} if choice.mode == "tool" else choice.mode
        if request.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = request.parallel_tool_calls
    elif request.tool_choice is not None and request.tool_choice.mode == "none":
        out["tool_choice"] = "none"
    if request.output is not None:
        fmt = request.output
        if fmt.kind == "json_object":
            out["response_format"] = {"type": "json_object"}
        else:
            spec: dict = {"name": fmt.name or "output", "schema": fmt.schema}
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            if fmt.description:
                spec["description"] = fmt.description
            out["response_format"] = {"type": "json_schema", "json_schema": spec}
    effort = request.reasoning_effort
    if effort is None and request.reasoning_budget is not None:
        effort = ir.effort_of_budget(request.reasoning_budget)
    if effort is not None and effort != "none":
        out["reasoning_effort"] = effort
    if request.verbosity is not None:
        out["verbosity"] = request.verbosity
    if request.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _write_tool(tool: ir.Tool) -> dict:
    function: dict = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _write_user(turn: ir.Turn, messages: list[dict]) -> None:
    parts = turn.parts
    if len(parts) == 1 and type(parts[0]) is Text:  # the usual user turn: its words
        messages.append({"role": "user", "content": parts[0].text})
        return
    content: list[dict] = []
    for part in parts:
        if isinstance(part, ToolResult):
            result = part.content
            if len(result) == 1 and type(result[0]) is Text:
                text = result[0].text
            else:
                text = ir.text_of(result, f"the result of tool call {part.call_id}", TITLE)
            messages.append({"role": "tool", "tool_call_id": part.call_id, "content": text})
        elif isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            image: dict = {"url": ir.image_url(part)}
            if part.detail is not None:
                image["detail"] = part.detail
            content.append({"type": "image_url", "image_url": image})
    if content:
        single = len(content) == 1 and content[0]["type"] == "text"
        messages.append({"role": "user", "content": content[0]["text"] if single else content})


def _write_assistant(turn: ir.Turn, messages: list[dict]) -> None:
    texts = []
    calls = []
    for part in turn.parts:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, ToolCall):
            calls.append({"id": part.id, "type": "function", "function": {"name": part.name, "arguments": part.arguments}})
    message: dict = {"role": "assistant", "content": "".join(texts) if texts else (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    messages.append(message)


# -- a whole answer ----------------------------------------------------------------------------


def read_answer(body: dict) -> ir.Answer:
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    parts: list = []
    thought = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thought, str) and thought:
        parts.append(Reasoning(thought))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(Text(content))
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused:
        parts.append(Refusal(refusal))
    called = len(parts)
    for n, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        parts.append(ToolCall(call.get("id") or f"call_{n}", function.get("name") or "", arguments if isinstance(arguments, str) else "{}"))
    stop = STOP_REASONS.get(choice.get("finish_reason") or "stop", STOP_END)
    if refused:
        stop = STOP_FILTER
    elif stop == STOP_END and len(parts) > called:
        stop = STOP_TOOL  # some servers say "stop" after tool calls
    created = body.get("created")
    return ir.Answer(str(body.get("id") or "chatcmpl-noor"), str(body.get("model") or ""), parts, stop,
                     usage=read_usage(body.get("usage")), created=created if isinstance(created, int) else 0)


def read_usage(usage: object) -> ir.Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt_tokens = usage.get("prompt_tokens")
    if not isinstance(prompt_tokens, int):
        return None
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    reasoning = completion.get("reasoning_tokens") if isinstance(completion, dict) else None
    return ir.Usage(
        input_tokens=prompt_tokens, output_tokens=_int(usage.get("completion_tokens")),
        cache_read=_int(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else None,
    )


def write_usage(usage: ir.Usage) -> dict:
    out = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read, "cache_write_tokens": usage.cache_write},
    }
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def write_answer(answer: ir.Answer, request: ir.Request | None, now: int) -> bytes:
    text = refusal = thought = ""
    calls = []
    for p in answer.parts:
        if isinstance(p, Text):
            text += p.text
        elif isinstance(p, Refusal):
            refusal += p.text
        elif isinstance(p, Reasoning):
            thought += p.text
        elif isinstance(p, ToolCall):
            calls.append({"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}})
    message: dict = {"role": "assistant", "content": text or None, "refusal": refusal or None}
    if thought:
        message["reasoning_content"] = thought
    if calls:
        message["tool_calls"] = calls
    out: dict = {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created or now,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop" if refusal else FINISH_REASONS[answer.stop]}],
    }
    if answer.usage is not None:
        out["usage"] = write_usage(answer.usage)
    return orjson.dumps(out)


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
