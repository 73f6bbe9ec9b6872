"""The ``streamGenerateContent`` request for ``gemini/<model>``, built as LiteLLM 1.106 builds it
(``litellm/llms/vertex_ai/gemini/transformation.py`` and ``factory.py``), so that a history
written by either path replays on the other. Read by ``gemini_native``.

Kept from LiteLLM, quirks included: snake_case part names (``function_call``,
``function_response``, ``system_instruction``, ``max_output_tokens``; Google accepts both
spellings); consecutive user messages merged but tool results always a user turn of their own;
a tool result that is a JSON object sent as that object, anything else as ``{"content": ...}``;
thought signatures read back out of the call id (``<id>__thought__<signature>``); on Gemini 3
and newer the call id forwarded on calls and results, a placeholder signature on the first call
of a turn that has none, and temperature 1.0 unless set. Tool schemas: ``gemini_schema``.

Deliberate differences (each would make Google reject the request, or LiteLLM fail it): a call
whose arguments are not a JSON object is replayed with ``{}`` (LiteLLM fails the step, and sends
``{"type": "object"}`` for empty arguments); two identical calls in one turn are both replayed
(LiteLLM drops the second, leaving its result unanswered); a tool result's name is looked up in
every earlier turn, not only the last one with calls. ``request.extra``: the OpenAI-style
options LiteLLM maps are mapped the same way, Gemini's own ``generationConfig`` fields pass
through, anything else is dropped (``tool_choice``, ``response_format`` included).
"""

import json
import re
from typing import Any

from opencode.llm.gemini_schema import function_declaration
from opencode.llm.openai_native import LITELLM_ONLY_KEYS
from opencode.llm.types import ChatMessage, ModelRequest, ProviderError, ToolCall

GEMINI_API_BASE = "https://generativelanguage.googleapis.com"
SIGNATURE_SEPARATOR = "__thought__"  # LiteLLM's THOUGHT_SIGNATURE_SEPARATOR
# base64("skip_thought_signature_validator"): Google's documented placeholder signature
DUMMY_SIGNATURE = "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="
# GenerationConfig fields an ``extra`` key may name directly (either spelling)
GENERATION_FIELDS = frozenset(
    {"temperature", "top_p", "top_k", "candidate_count", "max_output_tokens", "stop_sequences"}
    | {"presence_penalty", "frequency_penalty", "response_mime_type", "response_schema", "seed"}
    | {"response_json_schema", "response_format", "response_logprobs", "logprobs"}
    | {"response_modalities", "image_config", "thinking_config", "media_resolution"}
    | {"speech_config"}
)
# budgets of LiteLLM's reasoning_effort mapping for Gemini 2.x (litellm.constants)
THINKING_BUDGETS = {"low": 1024, "medium": 2048, "high": 4096}
_PRE_GEMINI_3 = re.compile(
    r"^gemini-(?:[12](?:\.\d+)?|exp|(?:pro|flash)(?!-(?:lite-)?latest$))(?:-|$)"
)


def model_name(model: str) -> str:
    return model.split("/", 1)[1] if "/" in model else model


def stream_url(request: ModelRequest) -> str:
    name = model_name(request.model)
    if request.api_base:
        base = request.api_base.rstrip("/")
    else:
        base = f"{GEMINI_API_BASE}/{'v1alpha' if is_gemini_3_or_newer(name) else 'v1beta'}"
    return f"{base}/models/{name}:streamGenerateContent?alt=sse"


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The key goes in a header, never the URL (which ends up in logs and error messages)."""
    return {"x-goog-api-key": api_key} if api_key else {}


def is_gemini_3_or_newer(name: str) -> bool:
    """LiteLLM's ``VertexGeminiConfig._is_gemini_3_or_newer`` for a model name without prefix."""
    name = name.split("/")[-1].lower()
    if not name or name.isdigit() or name.startswith("gemma-"):
        return False
    return _PRE_GEMINI_3.match(name) is None


def request_body(request: ModelRequest) -> dict[str, Any]:
    name = model_name(request.model)
    gemini_3 = is_gemini_3_or_newer(name)
    system = [request.system] if request.system else []
    system += [m.text for m in request.messages if m.role == "system"]
    messages = [m for m in request.messages if m.role != "system"]
    if system and not messages:
        messages = [ChatMessage("user", ".")]
    body: dict[str, Any] = {"contents": contents(messages, gemini_3)}
    if system:
        body["system_instruction"] = {"parts": [{"text": text} for text in system]}
    if request.tools:
        declarations = [function_declaration(spec) for spec in request.tools]
        body["tools"] = [{"function_declarations": declarations}]
    extra, config = generation_config(request, name, gemini_3)
    body.update(extra)
    if config:
        body["generationConfig"] = config
    return body


# ---- contents ----


def contents(messages: list[ChatMessage], gemini_3: bool) -> list[dict[str, Any]]:
    """``gemini_convert_messages_with_history``: user turns merged, then the model turn, then
    the tool results that follow it as one user turn of their own."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id -> tool name, latest turn wins
    results: list[dict[str, Any]] = []
    i, n = 0, len(messages)
    while i < n:
        start = i
        user = []
        while i < n and messages[i].role == "user":
            user.append({"text": messages[i].text})
            i += 1
        if user:
            out.append({"role": "user", "parts": user})
        model: list[dict[str, Any]] = []
        while i < n and messages[i].role == "assistant":
            message = messages[i]
            if message.text:
                model.append({"text": message.text})
            model += [call_part(c, gemini_3, k == 0) for k, c in enumerate(message.tool_calls)]
            names.update((c.id, c.name) for c in message.tool_calls)
            i += 1
        if model:
            out.append({"role": "model", "parts": model})
        if i < n and messages[i].role == "tool":
            results.append(result_part(messages[i], names, gemini_3))
            i += 1
        if i < n and messages[i].role != "tool" and results:
            out.append({"role": "user", "parts": results})
            results = []
        i += i == start  # a role none of the above reads (system messages are gone by now)
    if results:
        out.append({"role": "user", "parts": results})
    return out or [{"role": "user", "parts": [{"text": " "}]}]


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """``call_x__thought__<sig>`` -> (``call_x``, ``<sig>``), as LiteLLM encodes them."""
    clean, _, signature = call_id.partition(SIGNATURE_SEPARATOR)
    return clean, signature or None


def call_part(call: ToolCall, gemini_3: bool, first: bool) -> dict[str, Any]:
    clean, signature = split_call_id(call.id)
    function: dict[str, Any] = {"name": call.name, "args": call_arguments(call.arguments)}
    if gemini_3 and clean:
        function["id"] = clean
    part: dict[str, Any] = {"function_call": function}
    if not signature and first and gemini_3:
        signature = DUMMY_SIGNATURE
    if signature:
        part["thoughtSignature"] = signature
    return part


def call_arguments(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def result_part(message: ChatMessage, names: dict[str, str], gemini_3: bool) -> dict[str, Any]:
    call_id = message.tool_call_id or ""
    name = names.get(call_id)
    if not name:
        raise ProviderError(f"gemini: a tool result ({call_id!r}) answers no earlier tool call")
    content = f"Error: {message.text}" if message.is_error else message.text
    response: dict[str, Any] = {"content": content}
    if content.strip().startswith(("{", "[")):
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            response = parsed
    function: dict[str, Any] = {"name": name, "response": response}
    clean, _ = split_call_id(call_id)
    if gemini_3 and clean:
        function["id"] = clean
    return {"function_response": function}


# ---- generationConfig ----


def generation_config(
    request: ModelRequest, name: str, gemini_3: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level fields, generationConfig) from ``max_tokens`` and ``request.extra``, mapped
    as LiteLLM's ``map_openai_params`` maps them."""
    top: dict[str, Any] = {}
    config: dict[str, Any] = {}
    if request.max_tokens:
        config["max_output_tokens"] = request.max_tokens
    penalties = not gemini_3 and name != "gemini-2.5-pro-preview-06-05"
    for key, value in request.extra.items():
        if key in LITELLM_ONLY_KEYS or key == "response_format" or value is None:
            continue  # LiteLLM rewrites OpenAI's response_format into a schema: not done here
        if key in ("temperature", "top_p", "top_k", "seed"):
            config[key] = value
        elif key in ("max_tokens", "max_completion_tokens"):
            config["max_output_tokens"] = value
        elif key == "n":
            config["candidate_count"] = value
        elif key == "stop":
            config["stop_sequences"] = [value] if isinstance(value, str) else value
        elif key in ("frequency_penalty", "presence_penalty"):
            if penalties:
                config[key] = value
        elif key == "logprobs":
            config["responseLogprobs"] = value
        elif key == "top_logprobs":
            config["logprobs"] = value
        elif key == "reasoning_effort":
            effort = value.get("effort") if isinstance(value, dict) else value
            if effort is not None:
                config["thinkingConfig"] = thinking_config(str(effort), name, gemini_3)
        elif key == "thinking" and isinstance(value, dict):
            config["thinkingConfig"] = thinking_param(value, gemini_3)
        elif key in ("safety_settings", "safetySettings"):
            top["safetySettings"] = value
        elif _snake(key) in GENERATION_FIELDS:
            config[key] = value
    if gemini_3 and "temperature" not in config:
        config["temperature"] = 1.0
    return top, config


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def thinking_config(effort: str, name: str, gemini_3: bool) -> dict[str, Any]:
    """``reasoning_effort``: a thinking level on Gemini 3+, a token budget before."""
    lowered = name.lower()
    if gemini_3:
        floor = "minimal" if "flash" in lowered else "low"
        if effort in ("disable", "none"):
            return {"thinkingLevel": floor, "includeThoughts": False}
        if effort in ("minimal", "low", "medium", "high"):
            return {
                "thinkingLevel": floor if effort == "minimal" else effort,
                "includeThoughts": True,
            }
    elif effort in ("disable", "none"):
        return {"thinkingBudget": 0, "includeThoughts": False}
    elif effort == "minimal":
        floors = [("gemini-2.5-flash-lite", 512), ("gemini-2.5-pro", 128), ("gemini-2.5-flash", 1)]
        budget = next((b for model, b in floors if model in lowered), 128)
        return {"thinkingBudget": budget, "includeThoughts": True}
    elif effort in THINKING_BUDGETS:
        return {"thinkingBudget": THINKING_BUDGETS[effort], "includeThoughts": True}
    raise ProviderError(
        f"gemini: reasoning_effort {effort!r} is not supported "
        "(use minimal, low, medium, high, none or disable)",
        status_code=400,
    )


def thinking_param(thinking: dict[str, Any], gemini_3: bool) -> dict[str, Any]:
    """Anthropic-style ``thinking={"type": "enabled", "budget_tokens": N}``."""
    enabled = thinking.get("type") == "enabled"
    budget = thinking.get("budget_tokens")
    if gemini_3:
        return {"includeThoughts": enabled and budget != 0}
    config: dict[str, Any] = {"includeThoughts": True} if enabled and budget != 0 else {}
    if isinstance(budget, int):
        config["thinkingBudget"] = budget
    return config
