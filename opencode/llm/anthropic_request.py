"""The Anthropic Messages request, built here as LiteLLM (1.106) builds it, for ``anthropic_native``.

``ChatMessage``s become Anthropic turns the way LiteLLM's ``anthropic_messages_pt`` makes them:
the system prompt as a list of text blocks; consecutive user and tool messages merged into one
user turn (tool results first, as ``tool_result`` blocks), consecutive assistant messages into
one assistant turn (signed thinking blocks first, then text, then ``tool_use`` blocks with the
arguments parsed from their JSON); an empty user text replaced by LiteLLM's placeholder, the
final assistant text without trailing whitespace; a dummy tool when the history calls tools
and the request offers none. ``max_tokens`` and the ``reasoning_effort`` mapping read LiteLLM's
offline cost map (its JSON file, without importing LiteLLM).

Deliberate differences: a failed tool result also carries ``is_error: true`` (LiteLLM only
prefixes the text with "Error: ", which is kept); two user turns that LiteLLM would send apart
(around an empty assistant message it drops) are one turn here; tool names are sent as they are
(LiteLLM rewrites names outside ``[a-zA-Z0-9_-]``; ours never are); of LiteLLM's OpenAI-style
options only ``reasoning_effort``, ``max_completion_tokens`` and ``stop`` are translated, the
rest of ``request.extra`` is passed through as Anthropic fields.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

from opencode.llm import cost_map
from opencode.llm.openai_native import LITELLM_ONLY_KEYS
from opencode.llm.types import ChatMessage, ModelRequest, ProviderError, ToolSpec

ANTHROPIC_API_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # LiteLLM's for a model its cost map does not know
THINKING_HEADROOM = 4096  # LiteLLM: max_tokens = thinking budget + this, when none was asked
EMPTY_TEXT = "[System: Empty message content sanitised to satisfy protocol]"  # LiteLLM's words
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
THINKING_BUDGETS |= {"xhigh": 8192, "max": 16384}
ADAPTIVE_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
ADAPTIVE_EFFORTS |= {"xhigh": "xhigh", "max": "max"}
DUMMY_TOOL = {
    "name": "dummy_tool",
    "input_schema": {"type": "object", "properties": {}},
    "type": "custom",
    "description": "This is a dummy tool call",
}
SCHEMA_KEYS = ("type", "properties", "additionalProperties", "required", "$defs", "strict")
_INVALID_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def messages_url(api_base: str | None) -> str:
    """LiteLLM appends ``/v1/messages`` to any base that does not end with it already."""
    base = (api_base or ANTHROPIC_API_BASE).rstrip("/")
    return base if base.endswith("/v1/messages") else f"{base}/v1/messages"


def request_headers(api_key: str | None) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION, "accept": "application/json"}
    return {**headers, "x-api-key": api_key} if api_key else headers


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The Messages body; ``request.extra`` cannot switch off streaming."""
    model = request.model.split("/", 1)[1]
    body: dict[str, Any] = {"model": model, "messages": to_anthropic_messages(request.messages)}
    if request.tools:
        body["tools"] = [to_anthropic_tool(spec) for spec in request.tools]
    elif any(message.tool_calls for message in request.messages):
        body["tools"] = [DUMMY_TOOL]  # Anthropic rejects tool_use blocks without tools
    system = [m.text for m in request.messages if m.role == "system" and m.text]
    if request.system:
        system.insert(0, request.system)
    if system:
        body["system"] = [{"type": "text", "text": text} for text in system]
    extra = {k: v for k, v in request.extra.items() if k not in LITELLM_ONLY_KEYS}
    max_tokens = extra.pop("max_tokens", None) or extra.pop("max_completion_tokens", None)
    max_tokens = max_tokens or request.max_tokens
    if (stop := extra.pop("stop", None)) is not None:
        extra["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if (effort := extra.pop("reasoning_effort", None)) is not None:
        extra.pop("thinking", None)
        extra.update(thinking_options(model, effort))
    body.update(extra)
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if not max_tokens:
        has_budget = isinstance(budget, int)
        max_tokens = budget + THINKING_HEADROOM if has_budget else default_max_tokens(model)
    body["max_tokens"] = max_tokens
    body["stream"] = True
    return body


def thinking_options(model: str, effort: Any) -> dict[str, Any]:
    """``reasoning_effort`` as LiteLLM maps it: adaptive thinking with ``output_config.effort``
    for the models its cost map flags (Claude 4.6 and later), else a thinking budget."""
    if isinstance(effort, dict):
        effort = effort.get("effort")
    if effort is None or effort == "none" or not isinstance(effort, str):
        return {}
    if effort not in THINKING_BUDGETS:
        message = f"anthropic error 400: unmapped reasoning_effort {effort!r}"
        raise ProviderError(message, status_code=400)
    if model_flag(model, "supports_adaptive_thinking"):
        thinking = {"type": "adaptive", "display": "summarized"}
        return {"thinking": thinking, "output_config": {"effort": ADAPTIVE_EFFORTS[effort]}}
    return {"thinking": {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}}


def to_anthropic_tool(spec: ToolSpec) -> dict[str, Any]:
    schema = dict(spec.parameters or {})
    schema["type"] = "object"
    schema.setdefault("properties", {})
    input_schema = {key: schema[key] for key in SCHEMA_KEYS if key in schema}
    tool = {"name": spec.name, "input_schema": input_schema, "type": "custom"}
    return {**tool, "description": spec.description} if spec.description is not None else tool


# ---- messages ----


def to_anthropic_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    seen_calls: set[str] = set()  # tool_use ids of the assistant turn being built
    for message in messages:
        if message.role == "system":
            continue  # sent as system blocks
        role = "assistant" if message.role == "assistant" else "user"
        merged = bool(turns) and turns[-1]["role"] == role
        if role == "user":
            blocks = [_user_block(message)]
        else:
            if not merged:
                seen_calls = set()
            blocks = _assistant_blocks(message, seen_calls)
        if not blocks:
            continue  # an empty assistant message: LiteLLM leaves it out
        if merged:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if turns and turns[-1]["role"] == "assistant":  # Anthropic: no trailing whitespace there
        for block in turns[-1]["content"]:
            if block["type"] == "text":
                block["text"] = block["text"].rstrip()
    return turns


def _user_block(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        text = f"Error: {message.text}" if message.is_error else message.text
        block = {"type": "tool_result", "tool_use_id": _safe_id(message.tool_call_id or "")}
        block["content"] = text
        return {**block, "is_error": True} if message.is_error else block
    return {"type": "text", "text": message.text if message.text.strip() else EMPTY_TEXT}


def _assistant_blocks(message: ChatMessage, seen_calls: set[str]) -> list[dict[str, Any]]:
    """Signed thinking first (Anthropic verifies it), then the text, then the calls. Reasoning
    without a signature (another provider's) cannot be replayed and is left out."""
    blocks: list[dict[str, Any]] = []
    for block in message.reasoning:
        if block.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": block.redacted})
        elif block.signature:
            thinking = {"type": "thinking", "thinking": block.text, "signature": block.signature}
            blocks.append(thinking)
    if message.text:
        text = message.text if message.text.strip() else EMPTY_TEXT
        blocks.append({"type": "text", "text": text})
    for call in message.tool_calls:
        call_id = _safe_id(call.id)
        if call_id in seen_calls:
            continue  # Anthropic: tool_use ids must be unique
        seen_calls.add(call_id)
        arguments = tool_input(call.arguments, call.name)
        blocks.append({"type": "tool_use", "id": call_id, "name": call.name, "input": arguments})
    return blocks


def tool_input(arguments: str, name: str) -> Any:
    """The call's arguments as JSON, as LiteLLM parses them: empty is ``{}``; JSON cut short
    gets its brackets closed; anything else fails the request (a 400, as through LiteLLM)."""
    if not arguments or not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except ValueError as error:
        repaired = _closed_json(arguments)
        if repaired is not None:
            return repaired
        message = (
            f"anthropic error 400: Failed to parse tool call arguments for tool '{name}' "
            f"(Anthropic tool invoke). Error: {error}. Arguments: {arguments[:200]}"
        )
        raise ProviderError(message, status_code=400) from None


def _closed_json(text: str) -> Any:
    """LiteLLM's repair of arguments cut short: close the brackets left open."""
    stripped = text.rstrip()
    openers: list[str] = []
    in_string = escaped = False
    for char in stripped:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = in_string
        elif char == '"':
            in_string = not in_string
        elif not in_string and char in "{[":
            openers.append("}" if char == "{" else "]")
        elif not in_string and char in "}]" and openers and openers[-1] == char:
            openers.pop()
    if not openers:
        return None
    try:
        return json.loads(stripped.rstrip(",") + "".join(reversed(openers)))
    except ValueError:
        return None


def _safe_id(call_id: str) -> str:
    """Anthropic requires ids in ``[a-zA-Z0-9_-]`` (other providers' ids may not be)."""
    return _INVALID_ID_CHARS.sub("_", call_id) or "tool_use_id"


# ---- LiteLLM's offline cost map (``cost_map``, loaded at start-up off the loop) ----


def default_max_tokens(model: str) -> int:
    """LiteLLM's ``max_tokens`` when none was asked: the model's ``max_output_tokens``."""
    entry = _anthropic_entry(model)
    value = entry.get("max_output_tokens") or entry.get("max_tokens")
    return value if isinstance(value, int) else DEFAULT_MAX_TOKENS


def model_flag(model: str, flag: str) -> bool:
    """A capability as LiteLLM reads it: the model's own entry, else the first of the map's
    ``fallback_generalizations`` rules for unknown Claude ids that sets it."""
    entry = _anthropic_entry(model)
    if flag in entry:
        return bool(entry[flag])
    return any(
        flag in info and pattern.search(model) for pattern, info in cost_map.fallback_rules()
    )


def _anthropic_entry(model: str) -> Mapping[str, Any]:
    entry = cost_map.entries().get(model)
    return entry if entry is not None and entry.get("litellm_provider") == "anthropic" else {}
