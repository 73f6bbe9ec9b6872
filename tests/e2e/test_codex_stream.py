"""The live stream in Codex's format through the real server: Codex's order of notifications,
deltas that add up to their items, reasoning, tools, compaction, and raw items that validate
against the seed schema and equal what ``GET /session/{id}/items`` exports."""

import httpx
import pytest

from tests.codex_notes import (
    RAW,
    assert_raw_items_valid,
    completed,
    deltas,
    methods,
    of_item,
    raw_items,
    raw_params,
)
from tests.e2e.codex import assert_one_turn, codex_send, exported, turn_of
from tests.e2e.helpers import new_session, send
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)
E2E_STORES = ("sqlite", "postgres")  # tests/conftest.py: each test on each

TODOS = [{"id": "1", "content": "write tests", "status": "in_progress", "priority": "high"}]


async def test_a_two_step_tool_turn_comes_in_codex_order(fake, server):
    fake.script(
        Reply(text=["Let me ", "check."], tool_calls=[("call_1", "todoread", {})]),
        Reply(text=["All ", "set."], input_tokens=20, output_tokens=8),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        notes = await codex_send(client, session_id, content="What is left?")
        turn = turn_of(notes)
        assert (await client.get(f"/session/{session_id}/message")).json()["messages"][0][
            "id"
        ] == turn  # the turn is named by the user message that started it

    assert methods(notes) == [
        "turn/started",
        RAW,  # the user message, then its ThreadItem
        "item/started",
        "item/completed",
        "item/started",  # step 1: the agentMessage streams
        "item/agentMessage/delta",
        "item/agentMessage/delta",
        "item/completed",
        RAW,  # message
        RAW,  # function_call
        "item/started",  # dynamicToolCall
        "thread/tokenUsage/updated",
        "item/completed",  # the call's result
        RAW,  # function_call_output
        "item/started",  # step 2
        "item/agentMessage/delta",
        "item/agentMessage/delta",
        "item/completed",
        RAW,
        "thread/tokenUsage/updated",
        "turn/completed",
    ]
    assert_one_turn(notes, session_id)
    assert_raw_items_valid(notes)
    started = notes[0]["params"]["turn"]
    assert started == {"id": turn, "items": [], "status": "inProgress", "error": None}
    user = notes[1]["params"]["item"]
    assert user == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "What is left?"}],
    }
    assert (
        notes[2]["params"]["item"]
        == notes[3]["params"]["item"]
        == {
            "type": "userMessage",
            "id": turn,
            "content": [{"type": "text", "text": "What is left?", "text_elements": []}],
        }
    )

    first, second = completed(notes, "agentMessage")
    assert (first["text"], first["phase"]) == ("Let me check.", "commentary")
    assert (second["text"], second["phase"]) == ("All set.", "final_answer")
    for message in (first, second):
        lifecycle = of_item(notes, message["id"])
        assert lifecycle[0]["params"]["item"] == {**message, "text": "", "phase": None}
        assert deltas(notes, message["id"]) == message["text"]
    message, call, output, answer = raw_items(notes)[1:]
    assert message["content"] == [{"type": "output_text", "text": "Let me check."}]
    assert call == {
        "type": "function_call",
        "name": "todoread",
        "arguments": "{}",
        "call_id": "call_1",
    }
    assert output == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": {"body": "[]", "success": True},
    }
    assert answer["phase"] == "final_answer"

    tool_started, tool_done = (n["params"]["item"] for n in of_item(notes, "call_1"))
    assert tool_started == {
        "type": "dynamicToolCall",
        "id": "call_1",
        "tool": "todoread",
        "arguments": {},
        "status": "inProgress",
        "contentItems": None,
        "success": None,
        "durationMs": None,
    }
    assert tool_done["status"] == "completed" and tool_done["success"] is True
    assert tool_done["contentItems"] == [{"type": "inputText", "text": "[]"}]

    usage = [n["params"]["tokenUsage"] for n in notes if n["method"] == "thread/tokenUsage/updated"]
    assert usage[0]["last"] == usage[0]["total"]
    assert usage[1]["last"]["inputTokens"] == 20 and usage[1]["last"]["outputTokens"] == 8
    assert usage[1]["total"]["inputTokens"] == 30 and usage[1]["total"]["totalTokens"] == 43
    done = notes[-1]["params"]["turn"]
    assert done == {"id": turn, "items": [], "status": "completed", "error": None}


async def test_outputs_come_in_call_order_and_failed_calls_fail(fake, server):
    fake.script(
        Reply(
            tool_calls=[
                ("call_todo", "todowrite", {"todos": TODOS}),
                ("call_bad", "no_such_tool", {}),
                ("call_args", "todowrite", {"todos": "not a list"}),
            ]
        ),
        Reply(text="All set."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        notes = await codex_send(client, session_id, content="Plan it")
        assert exported_equal(notes, await exported(client, session_id, turn_of(notes)))

    assert_one_turn(notes, session_id)
    assert_raw_items_valid(notes)
    items = raw_items(notes)
    order = ["call_todo", "call_bad", "call_args"]
    assert [i["call_id"] for i in items if i["type"] == "function_call"] == order
    outputs = [i for i in items if i["type"] == "function_call_output"]
    assert [o["call_id"] for o in outputs] == order
    assert [o["output"]["success"] for o in outputs] == [True, False, False]
    assert "todowrite" in outputs[1]["output"]["body"]  # the error text goes back as the body
    calls = {item["id"]: item for item in completed(notes, "dynamicToolCall")}
    assert [calls[c]["status"] for c in order] == ["completed", "failed", "failed"]
    assert calls["call_todo"]["arguments"] == {"todos": TODOS}
    for call_id in order:  # each call's item completes before its raw output goes out
        assert methods(of_item(notes, call_id)) == ["item/started", "item/completed"]
        assert position(notes, "item/completed", id=call_id) < position(
            notes, RAW, call_id=call_id, type="function_call_output"
        )
        assert position(notes, RAW, call_id=call_id, type="function_call") < position(
            notes, "item/started", id=call_id
        )


@pytest.mark.parametrize(
    ("model", "blob"), [("anthropic/claude-sonnet-4-5", "sig-fake"), ("openai/gpt-4o-mini", None)]
)
async def test_reasoning_streams_as_a_reasoning_item(fake, server, model, blob):
    fake.script(
        Reply(
            reasoning=["Let me ", "think."],
            text="Use the list.",
            tool_calls=[("toolu_1", "todoread", {})],
        ),
        Reply(text="Done."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        notes = await codex_send(client, session_id, content="think", model_id=model)
        assert exported_equal(notes, await exported(client, session_id, turn_of(notes)))

    assert_raw_items_valid(notes)
    (thought,) = completed(notes, "reasoning")
    assert thought["content"] == ["Let me think."] and thought["summary"] == []
    lifecycle = of_item(notes, thought["id"])
    started = lifecycle[0]["params"].pop("startedAtMs")
    assert isinstance(started, int) and started > 1_700_000_000_000  # Unix ms
    assert lifecycle[0] == {
        "method": "item/started",
        "params": {
            "item": {"type": "reasoning", "id": thought["id"], "summary": [], "content": []},
            "threadId": session_id,
            "turnId": turn_of(notes),
        },
    }
    assert {n["method"] for n in lifecycle[1:-1]} == {"item/reasoning/textDelta"}
    assert all(n["params"]["contentIndex"] == 0 for n in lifecycle[1:-1])
    assert deltas(notes, thought["id"]) == "Let me think."
    reasoning = next(i for i in raw_items(notes) if i["type"] == "reasoning")
    assert reasoning["encrypted_content"] == blob  # Anthropic's signature, kept for replay
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Let me think."}]
    assert reasoning["id"].startswith("rs_")
    kinds = [i["type"] for i in raw_items(notes)]
    assert kinds == [
        "message",
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]


async def test_redacted_thinking_is_a_reasoning_item_without_deltas(fake, server):
    fake.script(Reply(redacted_thinking="opaque-blob", text="Answer."))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        notes = await codex_send(
            client, session_id, content="think", model_id="anthropic/claude-sonnet-4-5"
        )
    assert_raw_items_valid(notes)
    reasoning = next(i for i in raw_items(notes) if i["type"] == "reasoning")
    assert reasoning["encrypted_content"] == "opaque-blob" and reasoning["content"] is None
    (thought,) = completed(notes, "reasoning")
    assert methods(of_item(notes, thought["id"])) == ["item/started", "item/completed"]


async def test_the_raw_items_of_finished_turns_equal_the_export(fake, server):
    fake.script(
        Reply(
            reasoning="Plan.",
            text="Writing.",
            tool_calls=[("c1", "todowrite", {"todos": TODOS}), ("c2", "todoread", {})],
        ),
        Reply(reasoning="Check.", tool_calls=[("c3", "todoread", {})]),
        Reply(text="Done: one todo."),
        Reply(text="Second turn."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        first = await codex_send(
            client, session_id, content="plan", model_id="anthropic/claude-sonnet-4-5"
        )
        second = await codex_send(client, session_id, content="again")
        for notes in (first, second):
            assert_raw_items_valid(notes)
            assert exported_equal(notes, await exported(client, session_id, turn_of(notes)))
        everything = (await client.get(f"/session/{session_id}/items")).json()["items"]
    assert everything == raw_params(first) + raw_params(second)
    # the user message; reasoning, text, 2 calls, 2 outputs; reasoning, a call, its output; text
    assert len(raw_params(first)) == 1 + (4 + 2) + (2 + 1) + 1


async def test_compaction_is_an_item_with_its_raw_compaction(fake, start_server):
    summary = "## Goal\nPlan a trip to Lisbon."
    server = start_server(OPENCODE_COMPACT_MESSAGES="4")
    fake.script(
        Reply(text="Lisbon in May is lovely."),
        Reply(text="Three nights works."),
        Reply(text=summary),
        Reply(text="Booked."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        await send(client, session_id, content="Lisbon in May")
        await send(client, session_id, content="For three nights")
        notes = await codex_send(client, session_id, content="Book the hotel please")
        items = (await client.get(f"/session/{session_id}/items")).json()["items"]

    assert_one_turn(notes, session_id)
    assert_raw_items_valid(notes)
    assert methods(notes)[:7] == [
        "turn/started",
        RAW,
        "item/started",
        "item/completed",
        "item/started",  # contextCompaction
        "item/completed",
        RAW,  # compaction
    ]
    compaction = notes[4]["params"]["item"]
    assert compaction["type"] == "contextCompaction" and notes[5]["params"]["item"] == compaction
    assert notes[6]["params"]["item"] == {"type": "compaction", "encrypted_content": summary}
    # The export has the same items under the same turn id; the summary message is stored after
    # the turn's reply (where the compaction happened in the session), so there it comes last.
    ours = [entry["item"] for entry in items if entry["turnId"] == turn_of(notes)]
    assert ours == raw_items(notes)[:1] + raw_items(notes)[2:] + raw_items(notes)[1:2]


def position(notes: list[dict], method: str, **item_fields: str) -> int:
    """Where the first ``method`` notification about an item with ``item_fields`` is."""
    for index, note in enumerate(notes):
        item = note["params"].get("item") or {}
        if note["method"] == method and all(item.get(k) == v for k, v in item_fields.items()):
            return index
    raise AssertionError(f"no {method} {item_fields}")


def exported_equal(notes: list[dict], export: list[dict]) -> bool:
    """The stream's ``rawResponseItem/completed`` params are exactly the export's entries."""
    assert raw_params(notes) == export
    return True
