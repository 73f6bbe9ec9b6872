"""Our Codex items, and the design note's examples, validate against the seed and upstream.

The seed must accept every item. Upstream (the pinned Codex CLI's schema) must too, except where a
known difference applies (numbered in ``test_upstream_schema.py``): only difference 1, the tool
output payload, touches what we emit, and for it the bare-body form of the same item must pass
upstream instead.
"""

from datetime import UTC, datetime
from typing import Any

import pytest

from opencode.events.codex_items import message_items, notification, turn_id
from opencode.storage.base import MessageRecord
from tests.codex.upstream import Schema, problem

OUTPUT_TYPES = {"function_call_output", "custom_tool_call_output"}  # difference 1

# The design note's examples (section 4), as they stand there.
NOTE_EXAMPLES = [
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Fetching the release notes first."}],
        "phase": "commentary",
    },
    {
        "type": "reasoning",
        "id": "rs_prt_01",
        "summary": [{"type": "summary_text", "text": "Planning the lookup"}],
        "encrypted_content": None,
    },
    {
        "type": "function_call",
        "name": "web_fetch",
        "call_id": "call_01",
        "arguments": '{"url": "https://fastapi.tiangolo.com/release-notes/"}',
    },
    {
        "type": "function_call_output",
        "call_id": "call_01",
        "output": {"body": "# Release Notes …", "success": True},
    },
    {
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": "FastAPI 0.115 release notes"},
    },
    {"type": "compaction", "encrypted_content": "gAAAAABo...opaque"},
]

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SESSION = "ses_codex"
USER = "msg_user"


def stored(message_id: str, role: str, parts: list[dict[str, Any]], **fields: Any) -> MessageRecord:
    fields.setdefault("status", "completed")
    if role == "assistant":
        fields.setdefault("parent_id", USER)
    return MessageRecord(message_id, SESSION, role, NOW, NOW, parts=parts, **fields)


def tool(call_id: str, state: str, output: str | None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("arguments", {"url": "https://fastapi.tiangolo.com/release-notes/"})
    part = {"type": "tool", "call_id": call_id, "name": "web_fetch", "state": state}
    return {**part, "output": output, **fields}


def finish(step: int) -> dict[str, Any]:
    usage = {"input_tokens": 10, "output_tokens": 5}
    return {"type": "step-finish", "step_number": step, "stop_reason": "stop", "cost": 0.0, "usage": usage}  # fmt: skip


# Representative stored messages: what the history export and the live stream map.
RECORDS = {
    "user text": stored(USER, "user", [{"type": "text", "text": "Find the release notes."}]),
    "tool turn": stored(
        "msg_reply",
        "assistant",
        [
            {"type": "step-start", "step_number": 1},
            {
                "type": "reasoning",
                "text": "Fetch first.",
                "signature": "sig_EqQBCkY",
                "redacted": None,
            },
            {"type": "text", "text": "Fetching the release notes first."},
            tool("call_ok", "completed", "# Release Notes\n\n## 0.115.0"),
            tool("call_bad", "error", "fetch failed: HTTP 404", arguments={}),
            finish(1),
            {"type": "step-start", "step_number": 2},
            {"type": "reasoning", "text": "", "signature": None, "redacted": "cmVkYWN0ZWQ="},
            {"type": "text", "text": "0.115.0 added the new dependency cache."},
            finish(2),
        ],
    ),
    "interrupted turn": stored(
        "msg_aborted",
        "assistant",
        [
            {"type": "step-start", "step_number": 1},
            {"type": "text", "text": "Checking two pages."},
            tool("call_running", "running", None),
            tool("call_pending", "pending", None, arguments_json='{"url": "https://a.example"}'),
            tool("call_cut", "error", "Tool execution was interrupted before it finished."),
        ],
        status="aborted",
    ),
    "imported turn": stored(
        "msg_imported",
        "assistant",
        [
            {
                "type": "item",
                "item": {
                    "type": "message",
                    "role": "developer",
                    "content": [{"type": "input_text", "text": "Be brief."}],
                },
            },
            {
                "type": "reasoning",
                "text": "",
                "item_id": "rs_0a1b",
                "summary": ["Looked it up"],
                "encrypted_content": "gAAAAABo",
            },
            {
                "type": "item",
                "item": {
                    "type": "web_search_call",
                    "status": "completed",
                    "action": {"type": "search", "query": "FastAPI"},
                },
            },
            {
                "type": "item",
                "item": {
                    "type": "local_shell_call",
                    "call_id": "call_sh",
                    "status": "completed",
                    "action": {"type": "exec", "command": ["ls"]},
                },
            },
            {"type": "text", "text": "Found it.", "phase": "final_answer"},
        ],
    ),
    "compaction": stored(
        "msg_summary",
        "assistant",
        [
            {
                "type": "compaction",
                "summary": "The user asked for FastAPI release notes; 0.115.0 was found.",
                "trigger": "manual",
                "messages_folded": 2,
                "folded_through_seq": 2,
                "tokens_before": 900,
                "tokens_after": 40,
            }
        ],
    ),
}


def check_both(seed: Schema, upstream: Schema, params: dict[str, Any]) -> None:
    """The seed accepts ``params``; so does upstream, or a known difference says why not."""
    item = params["item"]
    assert problem(seed, params) is None, f"seed rejects {item}: {problem(seed, params)}"
    if item["type"] not in OUTPUT_TYPES:
        assert problem(upstream, params) is None, (
            f"upstream rejects {item}: {problem(upstream, params)}"
        )
        return
    # Difference 1: upstream wants the bare body where the seed wants {"body", "success"}.
    assert problem(upstream, params) is not None, f"upstream now accepts the seed form: {item}"
    bare = {**params, "item": {**item, "output": item["output"]["body"]}}
    assert problem(upstream, bare) is None, (
        f"upstream rejects the bare form: {problem(upstream, bare)}"
    )


@pytest.mark.parametrize("item", NOTE_EXAMPLES, ids=[item["type"] for item in NOTE_EXAMPLES])
def test_the_design_notes_examples(upstream, seed, item):
    check_both(seed, upstream.schema, notification(SESSION, USER, item))


@pytest.mark.parametrize("name", RECORDS)
def test_the_items_we_map_from_stored_messages(upstream, seed, name):
    record = RECORDS[name]
    items = message_items(record)
    assert items, f"{name} maps to no items"
    for item in items:
        check_both(seed, upstream.schema, notification(record.session_id, turn_id(record), item))


def test_the_stored_messages_cover_every_item_type_we_emit():
    types = {item["type"] for record in RECORDS.values() for item in message_items(record)}
    mapped = {"message", "reasoning", "function_call", "function_call_output", "compaction"}
    assert types == mapped | {"web_search_call", "local_shell_call"}  # the last two imported
