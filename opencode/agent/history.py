"""Stored messages -> the provider-neutral conversation the model sees.

An assistant message holds several steps (split at ``step-start`` parts); each step becomes one
assistant message followed by one tool message per call. A call that never finished (abort,
crash) still gets a result, because every provider rejects a tool call without one. An item
imported from a Codex history that this server cannot run (an ``item`` part) is shown to the
model as text where it stood.
"""

import json
from collections.abc import Iterable
from typing import Any

from opencode.llm.types import ChatMessage, Reasoning, ToolCall
from opencode.storage.base import MessageRecord

INTERRUPTED = "Tool execution was interrupted before it finished."
IMPORTED_CHARS = 4_000  # of one imported item's JSON shown to the model (images can be huge)


def build_history(records: Iterable[MessageRecord]) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    for record in records:
        if record.role == "user":
            history.append(ChatMessage("user", record.content))
        else:
            history.extend(_assistant_messages(record.parts))
    return history


def _assistant_messages(parts: list[dict[str, Any]]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for step in _split_steps(parts):
        text = _step_text(step)
        reasoning = tuple(
            Reasoning(p.get("text", ""), p.get("signature"), p.get("redacted"))
            for p in step
            if p["type"] == "reasoning"
        )
        tools = [p for p in step if p["type"] == "tool"]
        if not (text or tools):
            continue  # an empty step (aborted before any output) is not worth replaying
        calls = tuple(
            ToolCall(p["call_id"], p["name"], arguments_text(p["arguments"])) for p in tools
        )
        out.append(ChatMessage("assistant", text, reasoning=reasoning, tool_calls=calls))
        out.extend(_tool_result(p) for p in tools)
    return out


def _step_text(step: list[dict[str, Any]]) -> str:
    """The step's text, with each imported item as a paragraph of its own where it stood."""
    pieces: list[str] = []
    text = ""
    for part in step:
        if part["type"] == "text":
            text += part["text"]
        elif part["type"] == "item":
            if text:
                pieces.append(text)
                text = ""
            pieces.append(imported_text(part["item"]))
    if text:
        pieces.append(text)
    return "\n\n".join(pieces)


def imported_text(item: dict[str, Any]) -> str:
    """An imported Codex item as the model sees it: ``[Imported <type> item] <json>``."""
    body = json.dumps(item, ensure_ascii=False)
    if len(body) > IMPORTED_CHARS:
        body = f"{body[:IMPORTED_CHARS]} [... {len(body) - IMPORTED_CHARS} characters omitted]"
    return f"[Imported {item.get('type')} item] {body}"


def _split_steps(parts: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    steps: list[list[dict[str, Any]]] = [[]]
    for part in parts:
        if part["type"] == "step-start" and steps[-1]:
            steps.append([])
        steps[-1].append(part)
    return steps


def _tool_result(part: dict[str, Any]) -> ChatMessage:
    done = part["state"] in ("completed", "error")
    return ChatMessage(
        "tool",
        (part.get("output") or "") if done else INTERRUPTED,
        tool_call_id=part["call_id"],
        is_error=part["state"] != "completed",
    )


def arguments_text(arguments: Any) -> str:
    """Stored arguments (parsed JSON, or the raw text the model sent) as JSON text."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments)
