"""The one mapping from stored parts to Codex items (``events/codex_items.py``)."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from opencode.agent.history import INTERRUPTED
from opencode.events.codex_items import (
    message_items,
    notification,
    output_item,
    reasoning_id,
    step_items,
    turn_id,
)
from opencode.storage.base import MessageRecord
from tests.codex_seed import assert_valid

NOW = datetime(2026, 3, 12, tzinfo=UTC)


def record(role: str, parts: list[dict[str, Any]], **fields: Any) -> MessageRecord:
    values = {"id": f"msg_{role}", "session_id": "ses_1", "status": "completed", **fields}
    return MessageRecord(role=role, created_at=NOW, updated_at=NOW, parts=parts, **values)


def tool(call_id: str, state: str, output: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "type": "tool",
        "call_id": call_id,
        "name": "webfetch",
        "arguments": {"url": "https://example.com"},
        "state": state,
        "output": output,
        **fields,
    }


def step(number: int) -> dict[str, Any]:
    return {"type": "step-start", "step_number": number}


def finish(number: int) -> dict[str, Any]:
    usage = dict.fromkeys(("input_tokens", "output_tokens"), 1)
    return {"type": "step-finish", "step_number": number, "stop_reason": "stop", "usage": usage}


def text(value: str, **fields: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **fields}


def thinking(value: str, signature: str | None = None, redacted: str | None = None) -> dict:
    return {"type": "reasoning", "text": value, "signature": signature, "redacted": redacted}


def said(phase: str, value: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": value}]
    return {"type": "message", "role": "assistant", "content": content, "phase": phase}


def output(call_id: str, body: str, success: bool) -> dict[str, Any]:
    payload = {"body": body, "success": success}
    return {"type": "function_call_output", "call_id": call_id, "output": payload}


ARGS = json.dumps({"url": "https://example.com"})
TWO_STEPS = [
    step(1),
    thinking("Plan the fetch.", signature="sig-1"),
    text("Fetching first."),
    tool("call_1", "completed", "# Page", arguments_json='{"url":"https://example.com"}'),
    tool("call_2", "error", "HTTP 404"),
    finish(1),
    step(2),
    text("Here it is."),
    finish(2),
]


def validated(message: MessageRecord) -> list[dict[str, Any]]:
    items = message_items(message)
    assert_valid([notification("ses_1", turn_id(message), item) for item in items])
    return items


def test_a_two_step_turn_maps_part_by_part_with_outputs_after_each_steps_calls():
    message = record("assistant", TWO_STEPS, parent_id="msg_user")
    assert validated(message) == [
        {
            "type": "reasoning",
            "id": reasoning_id("msg_assistant", 1),
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "Plan the fetch."}],
            "encrypted_content": "sig-1",
        },
        said("commentary", "Fetching first."),
        {
            "type": "function_call",
            "name": "webfetch",
            "arguments": '{"url":"https://example.com"}',  # as the model sent it
            "call_id": "call_1",
        },
        {"type": "function_call", "name": "webfetch", "arguments": ARGS, "call_id": "call_2"},
        output("call_1", "# Page", True),
        output("call_2", "HTTP 404", False),
        said("final_answer", "Here it is."),
    ]
    assert turn_id(message) == "msg_user"


def test_user_text_is_input_text_and_the_turn_is_its_own():
    message = record("user", [text("Hi")], content="Hi")
    assert validated(message) == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
    ]
    assert turn_id(message) == "msg_user"
    assert message_items(record("user", [], content="old row"))[0]["content"][0]["text"] == (
        "old row"
    )


@pytest.mark.parametrize(
    ("status", "phase"),
    [("completed", "final_answer"), ("aborted", "commentary"), ("error", "commentary")],
)
def test_only_a_completed_message_has_a_final_answer(status, phase):
    message = record("assistant", [step(1), text("Done.")], status=status)
    assert validated(message) == [said(phase, "Done.")]


def test_text_before_a_tool_call_is_commentary_and_a_stored_phase_wins():
    parts = [step(1), text("Looking."), tool("c", "completed", "ok"), step(2), text("Found it.")]
    phases = [i.get("phase") for i in validated(record("assistant", parts))]
    assert phases == ["commentary", None, None, "final_answer"]
    parts = [step(1), text("Interim.", phase="commentary"), text("Answer.")]
    assert [i["phase"] for i in validated(record("assistant", parts))] == [
        "commentary",
        "final_answer",
    ]
    stored = [step(1), text("Odd, but stored.", phase="final_answer"), tool("c", "completed")]
    assert validated(record("assistant", stored))[0]["phase"] == "final_answer"


def test_every_call_gets_an_output_and_an_interrupted_one_is_aborted():
    parts = [
        step(1),
        tool("done", "completed", "ok"),
        tool("cut", "error", INTERRUPTED),
        tool("never", "pending"),
        tool("mid", "running"),
    ]
    items = validated(record("assistant", parts, status="aborted"))
    outputs = {i["call_id"]: i["output"] for i in items if i["type"] == "function_call_output"}
    calls = [i["call_id"] for i in items if i["type"] == "function_call"]
    assert calls == list(outputs) == ["done", "cut", "never", "mid"]
    aborted = {"body": "aborted", "success": False}
    assert outputs == {
        "done": {"body": "ok", "success": True},
        "cut": aborted,
        "never": aborted,
        "mid": aborted,
    }
    assert output_item(tool("x", "error", None))["output"] == {"body": "", "success": False}


def test_a_running_message_has_no_output_for_a_call_still_running():
    parts = [step(1), tool("done", "completed", "ok"), tool("asking", "running")]
    items = validated(record("assistant", parts, status="running"))
    assert [i["type"] for i in items] == ["function_call", "function_call", "function_call_output"]
    assert items[-1]["call_id"] == "done"


@pytest.mark.parametrize(
    ("fields", "arguments"),
    [
        ({"arguments_json": '{"url": "x"}', "arguments": {"url": "x"}}, '{"url": "x"}'),
        ({"arguments": {"url": "x"}}, '{"url": "x"}'),  # an old row: json.dumps
        ({"arguments": "{not json"}, "{not json"),  # stored raw: it did not parse
        ({"arguments": {}, "arguments_json": ""}, "{}"),
        ({"arguments": None}, "{}"),
    ],
)
def test_function_call_arguments_are_the_json_text_the_model_sent(fields, arguments):
    part = tool("c", "completed", "ok") | fields
    assert validated(record("assistant", [part]))[0]["arguments"] == arguments


def test_reasoning_blobs_ids_and_empty_text():
    parts = [
        thinking("", redacted="opaque"),
        thinking("plain"),
        thinking("imported") | {"item_id": "rs_abc", "summary": ["S"], "encrypted_content": "e"},
    ]
    first, second, third = validated(record("assistant", parts, id="msg_9"))
    assert first == {
        "type": "reasoning",
        "id": "rs_msg_9_0",
        "summary": [],
        "content": None,
        "encrypted_content": "opaque",
    }
    assert second["id"] == "rs_msg_9_1" and second["encrypted_content"] is None
    assert third["id"] == "rs_abc" and third["summary"] == [{"type": "summary_text", "text": "S"}]
    assert third["encrypted_content"] == "e"


def test_compaction_becomes_a_compaction_item_and_step_markers_nothing():
    summary = {"type": "compaction", "summary": "## Goal", "trigger": "manual"}
    message = record("assistant", [summary], id="msg_sum")
    assert validated(message) == [{"type": "compaction", "encrypted_content": "## Goal"}]
    assert turn_id(message) == "msg_sum"  # a summary starts no turn and has no parent
    assert message_items(record("assistant", [step(1), finish(1)])) == []


def test_step_items_are_what_the_export_gives_for_that_step():
    message = record("assistant", TWO_STEPS)
    exported = message_items(message)
    first = step_items("msg_assistant", TWO_STEPS[:6], start=0, final=False)
    second = step_items("msg_assistant", TWO_STEPS, start=6, final=True)
    outputs = [output_item(p) for p in TWO_STEPS if p["type"] == "tool"]
    assert first + outputs + second == exported
