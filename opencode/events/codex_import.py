"""Codex / Responses ``ResponseItem``s -> messages to store: the inverse of ``codex_items``.

Items are taken to be valid against the seed (``schemas/codex_schema.py`` checks them first).

- a ``message`` with role ``user`` starts a user message; if its content is only ``input_text``
  it becomes one text part per content item, otherwise the item is kept as it was;
- everything up to the next user message is one assistant message (``completed``), split into
  steps (``step-start`` parts) where the model spoke again after tool outputs, as the agent
  loop stores them;
- an assistant ``message`` of ``output_text`` -> a text part (with its ``phase``, if any);
- ``reasoning`` -> a reasoning part keeping its ``id`` (``item_id``), summary texts, content
  text and ``encrypted_content``; never a provider signature, so it is not replayed;
- ``function_call`` + the ``function_call_output`` with its ``call_id`` (later in the same
  assistant message) -> a tool part, ``completed`` unless ``success`` is false (a body of
  content items is kept as ``output_content``, its text as ``output``); a call with no output
  is stored as interrupted (exported as ``aborted``);
- anything this server cannot run (other roles, namespaced calls, outputs with no call, shell,
  custom tool, web search, image generation, tool search, ghost snapshot, compaction, other)
  -> an ``item`` part holding the item as it was, which the export gives back unchanged.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opencode.agent.history import INTERRUPTED, imported_text
from opencode.core.text import has_unsafe_text

Item = dict[str, Any]
Part = dict[str, Any]


@dataclass
class ImportedMessage:
    role: Literal["user", "assistant"]
    parts: list[Part] = field(default_factory=list)
    content: str = ""


def imported_messages(items: Iterable[Item]) -> list[ImportedMessage]:
    """The messages ``items`` make, in order (an assistant message follows its user message)."""
    messages: list[ImportedMessage] = []
    reply: _Reply | None = None
    for item in items:
        if item["type"] == "message" and item["role"] == "user":
            if reply is not None:
                messages.append(reply.finish())
                reply = None
            messages.append(_user_message(item))
            continue
        reply = reply or _Reply()
        reply.add(item)
    if reply is not None:
        messages.append(reply.finish())
    return messages


def unsafe_text_path(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where ``value`` holds a string (or key) with a NUL or a lone surrogate, which no store
    can take; None when it holds none."""
    if isinstance(value, str):
        return path if has_unsafe_text(value) else None
    children: Sequence[tuple[str | int, Any]] = ()
    if isinstance(value, dict):
        for key in value:
            if has_unsafe_text(str(key)):
                return path
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found = unsafe_text_path(child, (*path, key))
        if found is not None:
            return found
    return None


class _Reply:
    """The assistant message being built from the items after a user message."""

    def __init__(self) -> None:
        self.message = ImportedMessage("assistant")
        self._calls: dict[str, Part] = {}  # call_id -> its tool part, until its output comes
        self._steps = 0
        self._after_output = True  # the next item other than an output starts a step

    def add(self, item: Item) -> None:
        if item["type"] == "function_call_output" and item["call_id"] in self._calls:
            _settle(self._calls.pop(item["call_id"]), item["output"])
            self._after_output = True
            return
        if self._after_output:
            self._steps += 1
            self.message.parts.append({"type": "step-start", "step_number": self._steps})
            self._after_output = False
        part = _assistant_part(item)
        if part["type"] == "tool":
            self._calls[part["call_id"]] = part
        self.message.parts.append(part)

    def finish(self) -> ImportedMessage:
        for call in self._calls.values():
            call.update(state="error", output=INTERRUPTED)
        parts = self.message.parts
        self.message.content = "".join(p["text"] for p in parts if p["type"] == "text")
        return self.message


def _user_message(item: Item) -> ImportedMessage:
    content = item["content"]
    if content and all(c["type"] == "input_text" for c in content):
        parts = [{"type": "text", "text": c["text"]} for c in content]
        return ImportedMessage("user", parts, "\n\n".join(c["text"] for c in content))
    texts = [c.get("text") or f"[Imported {c['type']} content]" for c in content]
    return ImportedMessage(
        "user", [{"type": "item", "item": item}], "\n\n".join(texts) or imported_text(item)
    )


def _assistant_part(item: Item) -> Part:
    kind = item["type"]
    if kind == "message" and item["role"] == "assistant":
        content = item["content"]
        if content and all(c["type"] == "output_text" for c in content):
            part = {"type": "text", "text": "".join(c["text"] for c in content)}
            return part | ({"phase": item["phase"]} if item.get("phase") else {})
    if kind == "reasoning":
        return {
            "type": "reasoning",
            "text": "".join(c["text"] for c in item.get("content") or []),
            "signature": None,
            "redacted": None,
            "item_id": item["id"],
            "summary": [s["text"] for s in item["summary"]],
            "encrypted_content": item.get("encrypted_content"),
        }
    if kind == "function_call" and item.get("namespace") is None:
        return {
            "type": "tool",
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": _parsed(item["arguments"]),
            "arguments_json": item["arguments"],
            "state": "pending",
            "output": None,
        }
    return {"type": "item", "item": item}


def _settle(call: Part, output: dict[str, Any]) -> None:
    call["state"] = "error" if output.get("success") is False else "completed"
    call["output"] = _body_text(output["body"])
    if isinstance(output["body"], list):  # content items: kept for the export
        call["output_content"] = output["body"]


def _body_text(body: str | list[dict[str, Any]]) -> str:
    """A tool output's body as the text a tool part stores (images become a placeholder)."""
    if isinstance(body, str):
        return body
    return "\n".join(c.get("text") or f"[Imported {c['type']} content]" for c in body)


def _parsed(arguments: str) -> Any:
    """Like the draft's ``parse_arguments``: parsed JSON when it parses, else the raw text."""
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
