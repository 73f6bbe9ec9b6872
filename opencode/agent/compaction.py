"""Context management, pure: what to fold into a summary, how to ask for one, what to prune.

A compaction folds the oldest stored messages into a model-written summary. The model then sees
the system prompt, the summary and the most recent messages verbatim. Cuts fall between stored
messages, and a stored assistant message holds every tool call of its turn with its result, so
a cut never separates a call from its result. Tokens are estimated at ~4 characters each: the
trigger that matters uses the provider's own count, and these estimates only size budgets.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from opencode.agent.history import arguments_text, imported_text
from opencode.llm.types import ChatMessage
from opencode.storage.base import MessageRecord

CHARS_PER_TOKEN = 4
PRUNED = "[Old tool output pruned to save context. Call the tool again if you need it.]"
SUMMARY_HEADER = (
    "The earlier part of this conversation was compacted into the summary below. Treat it as "
    "what was said and done so far; the messages after it are verbatim."
)
SUMMARY_PROMPT = """\
You compact a conversation between a user and an AI assistant that uses tools. Write a summary \
that lets the assistant continue the work without the original messages. Use these sections, \
in Markdown, and keep every concrete detail that may matter later (names, numbers, URLs, file \
paths, commands, error messages, the user's exact wording of requirements):

## Goal
What the user wants overall, and any constraints or preferences they stated.
## Decisions
What was decided or agreed, and why.
## Facts learnt
What the assistant found out (from tools, the web, the user).
## Files and URLs
Every file, URL or resource that matters, with one line on why.
## Open tasks and todos
What is still to do, including the todo list if there is one, and the next step.

Write only the summary. Do not answer the user or continue the conversation."""

_TRANSCRIPT_TEXT_CHARS = 8_000  # per message text in the transcript sent for summarising
_TRANSCRIPT_TOOL_CHARS = 1_500  # per tool output; the summary needs the gist, not the page


@dataclass(frozen=True)
class Fold:
    """Stored messages ``folded`` go into the summary; ``kept`` stay verbatim after it."""

    folded: list[MessageRecord]
    kept: list[MessageRecord]


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    chars = 0
    for message in messages:
        chars += len(message.text) + sum(len(r.text) for r in message.reasoning)
        chars += sum(len(call.name) + len(call.arguments) for call in message.tool_calls)
    return chars // CHARS_PER_TOKEN


def is_summary(record: MessageRecord) -> bool:
    return any(part.get("type") == "compaction" for part in record.parts)


def plan_fold(records: Sequence[MessageRecord], *, keep_messages: int, keep_tokens: int) -> Fold:
    """Keep at most ``keep_messages`` recent messages and ``keep_tokens`` of their text, starting
    the kept run at a user message so a question stays with its answer; fold the rest."""
    records = [record for record in records if not is_summary(record)]
    start, tokens = len(records), 0
    while start > 0 and len(records) - start < keep_messages:
        tokens += _record_chars(records[start - 1]) // CHARS_PER_TOKEN
        if tokens > keep_tokens:
            break
        start -= 1
    while start < len(records) and records[start].role != "user":
        start += 1
    return Fold(folded=records[:start], kept=records[start:])


def summary_request(
    previous_summary: str | None,
    folded: Sequence[MessageRecord],
    *,
    todos: Sequence[dict[str, Any]] = (),
    max_chars: int,
) -> str:
    """The user message asking for a summary of ``folded`` (and of the previous summary), with
    the session's current todo list, which the folded tool calls may show only in part."""
    sections = []
    if previous_summary:
        sections.append(f"<previous_summary>\n{previous_summary}\n</previous_summary>")
    transcript = render_transcript(folded, max_chars=max_chars)
    sections.append(f"<conversation>\n{transcript}\n</conversation>")
    if todos:
        listed = json.dumps(list(todos), indent=1, ensure_ascii=False)
        sections.append(f"<current_todo_list>\n{listed}\n</current_todo_list>")
    sections.append(
        "Summarise everything above (the previous summary included) in the required format."
    )
    return "\n\n".join(sections)


def render_transcript(records: Sequence[MessageRecord], *, max_chars: int) -> str:
    """The messages as text; past ``max_chars`` the oldest are left out, with a note."""
    blocks: list[str] = []
    used = 0
    for index in range(len(records) - 1, -1, -1):
        block = _render_record(records[index])
        if blocks and used + len(block) > max_chars:
            blocks.append(f"[... {index + 1} earlier messages left out to fit ...]")
            break
        blocks.append(block)
        used += len(block) + 2
    return "\n\n".join(reversed(blocks))


def summary_message(summary: str) -> ChatMessage:
    return ChatMessage("user", f"{SUMMARY_HEADER}\n\n<summary>\n{summary}\n</summary>")


def prune_tool_outputs(
    messages: Sequence[ChatMessage], *, budget_tokens: int, min_tokens: int = 50
) -> list[ChatMessage]:
    """The model's view with old tool outputs replaced by a marker.

    Walking back from the newest, tool outputs are kept until they add up to ``budget_tokens``;
    older ones (of at least ``min_tokens``, so the marker saves something) are pruned. Stored
    messages are untouched: this only changes what one request carries.
    """
    out = list(messages)
    used = 0
    for index in range(len(out) - 1, -1, -1):
        message = out[index]
        if message.role != "tool":
            continue
        tokens = len(message.text) // CHARS_PER_TOKEN
        if used + tokens <= budget_tokens or tokens < min_tokens:
            used += tokens
            continue
        out[index] = replace(message, text=PRUNED)
    return out


def _render_record(record: MessageRecord) -> str:
    if record.role == "user":
        return f"[user]\n{_clip(record.content, _TRANSCRIPT_TEXT_CHARS)}"
    return "\n\n".join(line for part in record.parts for line in _render_part(part))


def _render_part(part: dict[str, Any]) -> list[str]:
    kind = part.get("type")
    if kind == "text" and part.get("text"):
        return [f"[assistant]\n{_clip(part['text'], _TRANSCRIPT_TEXT_CHARS)}"]
    if kind == "tool":
        arguments = arguments_text(part.get("arguments"))
        output = part.get("output") or ("(no result)" if part.get("state") != "error" else "")
        label = "tool error" if part.get("state") == "error" else "tool result"
        return [
            f"[tool call] {part.get('name')}({_clip(arguments, _TRANSCRIPT_TOOL_CHARS)})",
            f"[{label}]\n{_clip(output, _TRANSCRIPT_TOOL_CHARS)}",
        ]
    if kind == "item":
        return [_clip(imported_text(part["item"]), _TRANSCRIPT_TOOL_CHARS)]
    return []


def _record_chars(record: MessageRecord) -> int:
    if record.role == "user":
        return len(record.content)
    chars = 0
    for part in record.parts:
        chars += len(part.get("text") or "") + len(part.get("output") or "")
        if part.get("arguments") is not None:
            chars += len(arguments_text(part["arguments"]))
    return chars


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters omitted ...]\n{text[-half:]}"
