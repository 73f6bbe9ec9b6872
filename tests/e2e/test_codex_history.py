"""The history as Codex items through the real server: turns with reasoning (OpenAI and
Anthropic), tool calls that succeed and fail, an aborted question and a compaction, exported,
checked against the seed, imported into a new session, exported again, and continued."""

import json

import httpx
import pytest

from opencode.schemas.codex_schema import ITEM_TYPES
from tests.codex_seed import assert_valid
from tests.e2e.helpers import listen_bus, new_session, open_turn, send, wait_until
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(120)
E2E_STORES = ("sqlite", "postgres")  # tests/conftest.py: each test on each

TODOS = [{"id": "1", "content": "sand the fence", "status": "pending", "priority": "high"}]
QUESTION = {
    "question": "Which colour?",
    "header": "Colour",
    "options": [{"label": "red", "description": ""}, {"label": "blue", "description": ""}],
    "multiple": False,
}
SUMMARY = "## Goal\nPaint the fence.\n## Open tasks and todos\nSand it first."
RAW_ARGUMENTS = '{"todos":[]}'  # not what json.dumps would write: the model's own text
ABORTED = {"body": "aborted", "success": False}


async def items(client: httpx.AsyncClient, session_id: str, **params) -> dict:
    response = await client.get(f"/session/{session_id}/items", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert_valid(page["items"])  # every entry, against the seed itself
    return page


async def a_session_with_everything(client: httpx.AsyncClient, fake) -> str:
    fake.script(
        Reply(reasoning="The user greets me.", text="Hello!"),
        Reply(
            reasoning="Plan first.",
            text="Let me plan.",
            tool_calls=[
                ("toolu_1", "todowrite", {"todos": TODOS}),
                ("toolu_2", "no_such_tool", {}),
            ],
        ),
        Reply(tool_calls=[("call_raw", "todowrite", RAW_ARGUMENTS)]),
        Reply(text="Planned."),
        Reply(tool_calls=[("call_q", "question", {"questions": [QUESTION]})]),
        Reply(text=SUMMARY),
    )
    session_id = await new_session(client)
    assert (await send(client, session_id, content="Hi there"))[-1].type == "done"
    claude = {"model_id": "anthropic/claude-sonnet-4-5"}
    frames = await send(client, session_id, content="Plan the fence", **claude)
    assert frames[-1].data["stop_reason"] == "stop"
    openai = {"model_id": "openai/gpt-4o-mini"}
    async with open_turn(client, session_id, content="Which colour?", **openai) as turn:
        await turn.until_type("question")
        await client.post(f"/session/{session_id}/abort")
        assert (await turn.rest())[-1].data["stop_reason"] == "aborted"
    compacted = await client.post(f"/session/{session_id}/compact")
    assert compacted.status_code == 200, compacted.text
    return session_id


async def test_the_export_validates_and_follows_the_rules(fake, server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await a_session_with_everything(client, fake)
        messages = (await client.get(f"/session/{session_id}/message")).json()["messages"]
        page = await items(client, session_id)
        entries = page["items"]
    assert page["total_count"] == len(messages) == 7
    exported = [entry["item"] for entry in entries]
    assert {item["type"] for item in exported} <= set(ITEM_TYPES)  # no step markers, no invention
    assert {item["type"] for item in exported} == {
        *("message", "reasoning", "function_call", "function_call_output", "compaction")
    }

    # turns: every item of a turn carries its user message's id
    users = [m["id"] for m in messages if m["role"] == "user"]
    turns = list(dict.fromkeys(entry["turnId"] for entry in entries))
    assert turns == [*users, messages[-1]["id"]]  # the summary is a message of its own
    assert {entry["threadId"] for entry in entries} == {session_id}

    # every call gets exactly one output, after it, with its call_id
    calls = [i for i in exported if i["type"] == "function_call"]
    outputs = [i for i in exported if i["type"] == "function_call_output"]
    assert [c["call_id"] for c in calls] == [o["call_id"] for o in outputs]
    for call in calls:
        (answer,) = [i for i in outputs if i["call_id"] == call["call_id"]]
        assert exported.index(answer) > exported.index(call)
    by_call = {o["call_id"]: o["output"] for o in outputs}
    assert by_call["toolu_1"]["success"] is True
    assert by_call["toolu_2"]["success"] is False and "todowrite" in by_call["toolu_2"]["body"]
    assert by_call["call_q"] == ABORTED  # the aborted question
    raw = next(c for c in calls if c["call_id"] == "call_raw")
    assert raw["arguments"] == RAW_ARGUMENTS
    assert json.loads(calls[0]["arguments"]) == {"todos": TODOS}

    # phases: text before a tool call is commentary, a completed turn's last text the answer
    said = [(i["content"][0]["text"], i.get("phase")) for i in exported if i["type"] == "message"]
    assert said == [
        ("Hi there", None),
        ("Hello!", "final_answer"),
        ("Plan the fence", None),
        ("Let me plan.", "commentary"),
        ("Planned.", "final_answer"),
        ("Which colour?", None),
    ]
    reasoning = [i for i in exported if i["type"] == "reasoning"]
    assert [r["content"][0]["text"] for r in reasoning] == ["The user greets me.", "Plan first."]
    assert reasoning[0]["encrypted_content"] is None  # OpenAI reasoning text has no blob
    assert reasoning[1]["encrypted_content"] == "sig-fake"  # Anthropic's signature
    assert reasoning[1]["id"].startswith(f"rs_{messages[3]['id']}_")
    assert exported[-1] == {"type": "compaction", "encrypted_content": SUMMARY}


async def test_pages_count_messages_and_know_their_turn(fake, server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await a_session_with_everything(client, fake)
        messages = (await client.get(f"/session/{session_id}/message")).json()["messages"]
        whole = (await items(client, session_id))["items"]
        pages = [await items(client, session_id, limit=2, offset=n) for n in (0, 2, 4, 6)]
        starts_at_reply = await items(client, session_id, limit=1, offset=3)
        newest = await items(client, session_id, limit=2, order="desc")
    assert [e for page in pages for e in page["items"]] == whole
    assert all(page["total_count"] == 7 and page["limit"] == 2 for page in pages)
    assert {e["turnId"] for e in starts_at_reply["items"]} == {messages[2]["id"]}
    assert [e["item"]["type"] for e in starts_at_reply["items"]][:2] == ["reasoning", "message"]
    assert newest["items"][0]["item"]["type"] == "compaction"  # newest message first
    assert newest["items"][1]["turnId"] == messages[4]["id"]


async def test_an_import_round_trips_and_the_next_turn_sees_it(fake, server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        source = await a_session_with_everything(client, fake)
        exported = [e["item"] for e in (await items(client, source))["items"]]

        target = await new_session(client)
        async with listen_bus(client) as events:
            response = await client.post(f"/session/{target}/items", json={"items": exported})
            assert response.status_code == 201, response.text
            imported = response.json()

            def created() -> list[str]:
                return [
                    f.data["properties"]["id"]
                    for f in events
                    if f.data["type"] == "message.created"
                    and f.data["properties"]["session_id"] == target
                ]

            await wait_until(lambda: created() == imported["messages"])
        assert imported["items"] == len(exported)
        again = await items(client, target)
        assert [e["item"] for e in again["items"]] == exported
        # the aborted reply and the summary after it became one assistant message
        assert again["total_count"] == len(imported["messages"]) == 6

        fake.script(Reply(text="Sanding first, then blue."))
        frames = await send(client, target, content="What next?")
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
        request = fake.requests[-1].json
        after = [e["item"] for e in (await items(client, target))["items"]]
    assert after[: len(exported)] == exported  # the new turn appended, nothing changed
    assert after[-1]["phase"] == "final_answer"

    sent = request["messages"]
    assert sent[1] == {"role": "user", "content": "Hi there"}
    tool_results = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert set(tool_results) == {"toolu_1", "toolu_2", "call_raw", "call_q"}
    assert tool_results["call_q"].endswith("aborted")  # an error result, as OpenAI gets them
    context = [m["content"] for m in sent if m["role"] == "assistant" and m.get("content")]
    assert any(
        c.startswith("[Imported compaction item]") and "Paint the fence" in c for c in context
    )
    assert sent[-1] == {"role": "user", "content": "What next?"}


async def test_an_import_into_a_busy_session_is_a_409(fake, server):
    fake.script(Reply(text=["still ", "going"], hang_after=1))
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="go") as turn:
            await turn.until_type("text")
            busy = await client.post(f"/session/{session_id}/items", json={"items": [item]})
            assert busy.status_code == 409, busy.text
            assert "being generated" in busy.json()["detail"]
            await client.post(f"/session/{session_id}/abort")
            await turn.rest()
        assert (await client.get(f"/session/{session_id}")).json()["message_count"] == 2
        done = await client.post(f"/session/{session_id}/items", json={"items": [item]})
        assert done.status_code == 201
