"""The shapes of Codex app-server v2 params the Codex stream sends besides raw items:
``ThreadItem``s (``userMessage``, ``dynamicToolCall``), ``TurnError``, token usage."""

import json
from typing import Any

from opencode.events.codex_items import Item
from opencode.schemas.common import UsageOut


def turn_error(message: str) -> dict[str, Any]:
    return {"message": message, "codexErrorInfo": None, "additionalDetails": None}


def token_breakdown(usage: UsageOut) -> dict[str, int]:
    """Codex counts like OpenAI: input includes the cached tokens, output the reasoning."""
    return {
        "totalTokens": usage.input_tokens + usage.output_tokens,
        "inputTokens": usage.input_tokens,
        "cachedInputTokens": usage.cache_read_tokens,
        "outputTokens": usage.output_tokens,
        "reasoningOutputTokens": usage.reasoning_tokens,
    }


def tool_item(call_id: str, call: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "type": "dynamicToolCall",
        "id": call_id,
        "tool": call.get("tool", ""),
        "arguments": call.get("arguments"),
        "status": status,
        "contentItems": None,
        "success": None,
        "durationMs": None,
    }


def text_item(text: str) -> dict[str, Any]:
    return {"type": "inputText", "text": text}


def content_items(body: Any) -> list[dict[str, Any]]:
    """A raw output's body (text, or ``input_text``/``input_image`` items) as Codex's
    ``DynamicToolCallOutputContentItem``s."""
    if not isinstance(body, list):
        return [text_item(str(body))]
    out = []
    for piece in body:
        if piece.get("type") == "input_image":
            out.append({"type": "inputImage", "imageUrl": piece.get("image_url", "")})
        else:
            out.append(text_item(piece.get("text", "")))
    return out


def user_input(item: Item) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for piece in item.get("content", []):
        if piece.get("type") == "input_image":
            out.append({"type": "image", "url": piece.get("image_url", "")})
        else:
            out.append({"type": "text", "text": piece.get("text", ""), "text_elements": []})
    return out


def item_text(item: Item) -> str:
    """The text of a raw ``message`` or ``reasoning`` item."""
    pieces = item.get("content") or []
    return "".join(p.get("text", "") for p in pieces if isinstance(p, dict))


def parsed_arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
