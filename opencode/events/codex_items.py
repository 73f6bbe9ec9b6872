"""The one mapping from stored messages and parts to OpenAI Responses / Codex ``ResponseItem``s.

Both the history export (``GET /session/{id}/items``)
and the live Codex stream (``rawResponseItem/completed``) take their items from here, so the
two can never disagree. Rules (see README "Codex / Responses items"):

- user text -> ``message`` role user, ``[{"type": "input_text", "text"}]``;
- assistant text -> ``message`` role assistant, ``output_text``; ``phase`` is ``final_answer``
  for a text part with no tool part after it in a *completed* message, else ``commentary``;
- reasoning -> ``reasoning`` with ``id`` = ``reasoning_id(message_id, part_index)``, ``summary``
  ``[]``, ``content`` ``[{"type": "reasoning_text", "text"}]`` (null when the text is empty),
  ``encrypted_content`` = the part's ``signature`` or ``redacted`` blob, else null;
- tool part -> ``function_call`` (``name``, ``call_id``, ``arguments`` as a JSON string: the
  part's ``arguments_json`` when stored, else ``json.dumps`` of ``arguments``), and its
  ``function_call_output`` ``{"call_id", "output": {"body", "success"}}``: completed -> success
  true, error -> false, anything else (never run, interrupted) -> ``{"body": "aborted",
  "success": false}``. A step's calls come first, then their outputs, both in call order;
- compaction part -> ``compaction`` with the summary as ``encrypted_content``;
- step-start / step-finish -> nothing.

What an import (``codex_import``) stored wins over what these rules derive, so export ->
import -> export gives the same items: a text part's ``phase``, a reasoning part's ``item_id``,
``summary`` texts and ``encrypted_content``, a tool part's ``output_content`` (an output body of
content items); an ``item`` part is given back as it was.
"""

import copy
import json
from typing import Any

from opencode.agent.history import INTERRUPTED
from opencode.storage.base import MessageRecord

Item = dict[str, Any]
ABORTED = {"body": "aborted", "success": False}
PHASES = ("commentary", "final_answer")


def reasoning_id(message_id: str, part_index: int) -> str:
    """The stable id of the reasoning part at ``part_index`` of a message."""
    return f"rs_{message_id}_{part_index}"


def turn_id(message: MessageRecord) -> str:
    """The id of the user message that started the turn ``message`` belongs to."""
    if message.role == "user":
        return message.id
    return message.parent_id or message.id


def message_items(message: MessageRecord) -> list[Item]:
    """Every ``ResponseItem`` of one stored message, in history order.

    A message still ``running`` gives no output for a call that has not finished yet (the live
    stream sends it when it does); once the message has ended, such a call is ``aborted``."""
    if message.role == "user":
        return _user_items(message)
    parts = message.parts
    completed = message.status == "completed"
    last_tool = _last_tool(parts, 0)
    items: list[Item] = []
    for start, end in _steps(parts):
        for index in range(start, end):
            final = completed and index > last_tool
            items += _part_items(message.id, index, parts[index], final=final)
        for part in parts[start:end]:
            if part.get("type") == "tool" and (message.status != "running" or _finished(part)):
                items.append(output_item(part))
    return items


def step_items(
    message_id: str, parts: list[dict[str, Any]], *, start: int, final: bool
) -> list[Item]:
    """The items a finished step adds (its reasoning, text and ``function_call``s, not the
    outputs): ``parts[start:]`` are the step's parts as the draft holds them (indexes are the
    parts' indexes in the message, for reasoning ids); ``final`` when the turn ends with this
    step (no tool calls), which makes its text ``final_answer``."""
    last_tool = _last_tool(parts, start)
    items: list[Item] = []
    for index in range(start, len(parts)):
        items += _part_items(message_id, index, parts[index], final=final and index > last_tool)
    return items


def output_item(part: dict[str, Any]) -> Item:
    """The ``function_call_output`` of a tool part (finished, failed, or never run)."""
    state, text = part.get("state"), part.get("output")
    body = part.get("output_content") or text or ""  # an imported body of content items
    if state == "completed":
        output = {"body": body, "success": True}
    elif state == "error" and text != INTERRUPTED:
        output = {"body": body, "success": False}
    else:  # never run, or interrupted by an abort, a failure or a crash
        output = dict(ABORTED)
    return {"type": "function_call_output", "call_id": part["call_id"], "output": output}


def notification(thread_id: str, turn: str, item: Item) -> dict[str, Any]:
    """The params of ``rawResponseItem/completed``."""
    return {"threadId": thread_id, "turnId": turn, "item": item}


def function_call_arguments(part: dict[str, Any]) -> str:
    """A tool part's arguments as the JSON text the model sent (``"{}"`` for none)."""
    raw = part.get("arguments_json")
    if isinstance(raw, str) and raw.strip():
        return raw
    arguments = part.get("arguments")
    if isinstance(arguments, str):  # stored raw: the model's text did not parse
        return arguments if arguments.strip() else "{}"
    return json.dumps(arguments if arguments is not None else {})


def _part_items(message_id: str, index: int, part: dict[str, Any], *, final: bool) -> list[Item]:
    kind = part.get("type")
    if kind == "text":
        phase = part.get("phase")
        if phase not in PHASES:
            phase = "final_answer" if final else "commentary"
        content = [{"type": "output_text", "text": part.get("text", "")}]
        return [{"type": "message", "role": "assistant", "content": content, "phase": phase}]
    if kind == "reasoning":
        return [_reasoning_item(message_id, index, part)]
    if kind == "tool":
        arguments = function_call_arguments(part)
        call = {"type": "function_call", "name": part["name"], "arguments": arguments}
        return [call | {"call_id": part["call_id"]}]
    if kind == "compaction":
        return [{"type": "compaction", "encrypted_content": part.get("summary") or ""}]
    if kind == "item":
        return [copy.deepcopy(part["item"])]
    return []  # step-start, step-finish: Codex has no such item


def _reasoning_item(message_id: str, index: int, part: dict[str, Any]) -> Item:
    text = part.get("text") or ""
    blob = part.get("encrypted_content") or part.get("signature") or part.get("redacted")
    return {
        "type": "reasoning",
        "id": part.get("item_id") or reasoning_id(message_id, index),
        "summary": [{"type": "summary_text", "text": s} for s in part.get("summary") or []],
        "content": [{"type": "reasoning_text", "text": text}] if text else None,
        "encrypted_content": blob,
    }


def _user_items(message: MessageRecord) -> list[Item]:
    """Consecutive text parts make one ``message``; imported items come back as they were."""
    items: list[Item] = []
    texts: list[dict[str, str]] = []
    for part in message.parts:
        if part.get("type") == "text":
            texts.append({"type": "input_text", "text": part.get("text", "")})
        elif part.get("type") == "item":
            if texts:
                items.append(_user_message(texts))
                texts = []
            items.append(copy.deepcopy(part["item"]))
    if texts or not items:
        if not texts and message.content:
            texts = [{"type": "input_text", "text": message.content}]
        items.append(_user_message(texts))
    return items


def _user_message(content: list[dict[str, str]]) -> Item:
    return {"type": "message", "role": "user", "content": content}


def _steps(parts: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """``(start, end)`` of each step: a ``step-start`` part begins one."""
    starts = [i for i, part in enumerate(parts) if part.get("type") == "step-start" and i > 0]
    bounds = [0, *starts, len(parts)]
    return list(zip(bounds, bounds[1:], strict=False))


def _last_tool(parts: list[dict[str, Any]], start: int) -> int:
    tools = [i for i in range(start, len(parts)) if parts[i].get("type") == "tool"]
    return tools[-1] if tools else -1


def _finished(part: dict[str, Any]) -> bool:
    return part.get("state") in ("completed", "error")
