"""Compaction through the real server: triggers, what the model sees next, status, failure,
the summary's cost, and pagination over a compacted session."""

import asyncio
import json

import httpx
import pytest

from opencode.agent.compaction import PRUNED, SUMMARY_HEADER
from tests.e2e.helpers import listen_bus, new_session, open_turn, restarted, send, wait_until
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)
E2E_STORES = ("sqlite", "postgres", "supabase")  # tests/conftest.py: each test on each

SUMMARY = "## Goal\nPlan a trip to Lisbon.\n## Open tasks and todos\nBook the hotel."
# gpt-4o-mini has a 128,000-token window: 0.8 of it is 102,400 prompt tokens.
OVER_RATIO = 110_000
LONG_FIRST = "I want to visit Lisbon in May. " + "We like museums and food. " * 60


def texts(request_json: dict) -> list[str]:
    """Every message's text in an OpenAI chat request, system prompt first."""
    out = []
    for message in request_json["messages"]:
        content = message.get("content") or ""
        out.append(content if isinstance(content, str) else str(content))
    return out


async def messages(client: httpx.AsyncClient, session_id: str, **params) -> dict:
    response = await client.get(f"/session/{session_id}/message", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def compaction_statuses(frames: list) -> list[str]:
    """The statuses of the ``session.compaction`` events among ``GET /event`` frames."""
    return [
        f.data["properties"]["status"] for f in frames if f.data["type"] == "session.compaction"
    ]


async def compaction_status(client: httpx.AsyncClient, session_id: str) -> dict:
    response = await client.get(f"/session/{session_id}/compaction-status")
    assert response.status_code == 200, response.text
    return response.json()


async def test_count_trigger_folds_old_messages_and_the_next_request_carries_the_summary(
    fake, start_server
):
    server = start_server(OPENCODE_COMPACT_MESSAGES="4")
    fake.script(
        Reply(text="Lisbon in May is lovely."),
        Reply(text="Three nights works."),
        Reply(text=SUMMARY, input_tokens=300, output_tokens=40),
        Reply(text="Booked."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        status = await compaction_status(client, session_id)
        assert status["status"] == "idle" and status["summary_message_id"] is None
        await send(client, session_id, content=LONG_FIRST)
        await send(client, session_id, content="For three nights")
        assert len(fake.requests) == 2  # 3 messages the model would see: no compaction yet

        frames = await send(client, session_id, content="Book the hotel please")  # 5 > 4: compact
        types = [f.type for f in frames]
        assert types[:4] == ["message_start", "compaction", "compaction", "step_start"]
        started, completed = frames[1].data, frames[2].data
        assert started["status"] == "started" and started["trigger"] == "messages"
        assert completed["status"] == "completed" and completed["messages_folded"] == 2
        assert completed["tokens_before"] > 0 and completed["cost"] > 0
        assert types[-1] == "done"

        summary_request, answer_request = fake.requests[-2].json, fake.requests[-1].json
        assert "You compact a conversation" in summary_request["messages"][0]["content"]
        assert "I want to visit Lisbon in May" in summary_request["messages"][1]["content"]
        assert "Lisbon in May is lovely." in summary_request["messages"][1]["content"]
        assert "tools" not in summary_request
        sent = texts(answer_request)
        assert sent[1].startswith(SUMMARY_HEADER) and SUMMARY in sent[1]
        assert not any("I want to visit Lisbon" in text for text in sent)  # folded: out
        assert sent[2:] == ["For three nights", "Three nights works.", "Book the hotel please"]

        status = await compaction_status(client, session_id)
        assert status["status"] == "completed" and status["trigger"] == "messages"
        assert status["messages_folded"] == 2 and status["compactions"] == 1
        assert status["summary_message_id"] == completed["summary_message_id"]
        assert status["last_compacted_at"] >= status["started_at"]
        assert 0 < status["tokens_after"] < status["tokens_before"]
        assert status["error"] is None

        page = await messages(client, session_id)
        assert page["total_count"] == 7  # nothing lost: 6 turn messages and the summary
        summary = page["messages"][-1]
        assert summary["id"] == status["summary_message_id"]
        assert summary["role"] == "assistant" and summary["content"] == SUMMARY
        (part,) = summary["parts"]
        assert part["type"] == "compaction" and part["folded_through_seq"] == 2
        assert part["messages_folded"] == 2 and part["trigger"] == "messages"
        assert [m["content"] for m in page["messages"][:2]] == [
            LONG_FIRST,
            "Lisbon in May is lovely.",
        ]

        cost = (await client.get(f"/session/{session_id}/cost")).json()
        turn_costs = sum(m["cost"] for m in page["messages"] if m["id"] != summary["id"])
        assert summary["cost"] > 0
        assert cost["total_cost"] == pytest.approx(turn_costs + summary["cost"])
        assert cost["models"][0]["steps"] == 4  # three answers and the summary

        # With 4 messages since the summary, the next turn compacts again: the new summary
        # is written from the previous one plus the next oldest exchange, and replaces it.
        fake.script(Reply(text="## Goal\nLisbon, hotel booked."), Reply(text="Anything else?"))
        await send(client, session_id, content="Thanks")
        resummary = fake.requests[-2].json["messages"][1]["content"]
        assert f"<previous_summary>\n{SUMMARY}\n</previous_summary>" in resummary
        assert "For three nights" in resummary and "Book the hotel please" not in resummary
        sent = texts(fake.requests[-1].json)
        assert "Lisbon, hotel booked." in sent[1] and SUMMARY not in sent[1]
        assert sent[2:] == ["Book the hotel please", "Booked.", "Thanks"]
        assert not any(text == SUMMARY for text in sent)  # summary messages are not replayed


async def test_token_trigger_at_turn_start_and_between_steps(fake, start_server):
    server = start_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        # At turn start: the previous turn's last step used more than 0.8 of the window.
        session_id = await new_session(client)
        fake.script(Reply(text="one"), Reply(text="two", input_tokens=OVER_RATIO))
        await send(client, session_id, content="first question")
        await send(client, session_id, content="second question")
        fake.script(Reply(text=SUMMARY), Reply(text="three"))
        frames = await send(client, session_id, content="third question")
        compaction = [f.data for f in frames if f.type == "compaction"]
        assert [c["status"] for c in compaction] == ["started", "completed"]
        assert compaction[0]["trigger"] == "tokens" and compaction[1]["messages_folded"] == 2
        sent = texts(fake.requests[-1].json)
        assert SUMMARY in sent[1] and "first question" not in sent
        assert sent[2:] == ["second question", "two", "third question"]

        # Between steps: a tool step's prompt crossed the line, so the next step is compacted.
        other = await new_session(client)
        fake.script(Reply(text="noted"))
        await send(client, other, content="remember the number 42")
        fake.script(
            Reply(tool_calls=[("call_1", "todoread", {})], input_tokens=OVER_RATIO),
            Reply(text=SUMMARY),
            Reply(text="done"),
        )
        frames = await send(client, other, content="what is on my list?")
        types = [f.type for f in frames]
        first_result = types.index("tool_result")
        assert types[first_result + 1 : first_result + 3] == ["compaction", "compaction"]
        assert frames[first_result + 2].data["status"] == "completed"
        final = fake.requests[-1].json["messages"]
        assert SUMMARY in final[1]["content"]
        assert not any("42" in (m.get("content") or "") for m in final[2:])
        assert final[2]["content"] == "what is on my list?"
        assert final[3]["tool_calls"][0]["id"] == "call_1"  # the call stays with its result
        assert final[4]["role"] == "tool" and final[4]["tool_call_id"] == "call_1"


async def third_turn_after_a_prompt_of(client, fake, tokens: int, *then: Reply) -> list:
    """Two turns, the second's prompt ``tokens`` long, then a third answered by ``then``; the
    third turn's frames."""
    session_id = await new_session(client)
    fake.script(Reply(text="one"), Reply(text="two", input_tokens=tokens), *then)
    await send(client, session_id, content="first question")
    await send(client, session_id, content="second question")
    return await send(client, session_id, content="third question")


async def test_compact_ratio_from_the_environment_sets_the_token_trigger(
    fake, server, start_server
):
    # 70,000 prompt tokens is under 0.8 of gpt-4o-mini's 128,000 window, over 0.5 of it.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        frames = await third_turn_after_a_prompt_of(client, fake, 70_000, Reply(text="three"))
    assert not any(f.type == "compaction" for f in frames)
    assert len(fake.requests) == 3  # no summary request at the default ratio

    tuned = start_server(OPENCODE_COMPACT_RATIO="0.5")
    async with httpx.AsyncClient(base_url=tuned.url, timeout=30) as client:
        frames = await third_turn_after_a_prompt_of(
            client, fake, 70_000, Reply(text=SUMMARY), Reply(text="three")
        )
    compaction = [f.data for f in frames if f.type == "compaction"]
    assert [(c["status"], c["trigger"]) for c in compaction] == [
        ("started", "tokens"),
        ("completed", "tokens"),
    ]
    assert SUMMARY in texts(fake.requests[-1].json)[1]
    assert frames[-1].type == "done"


async def test_an_automatic_summary_names_its_sections_carries_the_todos_and_is_on_the_bus(
    fake, server
):
    todos = [
        {"id": "1", "content": "Book the hotel", "status": "in_progress", "priority": "high"},
        {"id": "2", "content": "Buy tram tickets", "status": "pending", "priority": "low"},
    ]
    fake.script(
        Reply(tool_calls=[("call_todo", "todowrite", {"todos": todos})]),
        Reply(text="Noted."),
        Reply(text="Three nights.", input_tokens=OVER_RATIO),
        Reply(text=SUMMARY),
        Reply(text="On it."),
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        listen_bus(client) as bus,
    ):
        session_id = await new_session(client)
        await send(client, session_id, content="Plan a trip to Lisbon")
        await send(client, session_id, content="For three nights")
        frames = await send(client, session_id, content="Go ahead")
        assert [f.data["status"] for f in frames if f.type == "compaction"] == [
            "started",
            "completed",
        ]
        await wait_until(lambda: compaction_statuses(bus)[-1:] == ["completed"])
        stored_todos = (await client.get(f"/session/{session_id}/todo")).json()

    summary_request = fake.requests[-2].json["messages"]
    instructions = summary_request[0]["content"]
    for section in ("Goal", "Decisions", "Facts learnt", "Files and URLs", "Open tasks and todos"):
        assert f"## {section}\n" in instructions, section
    asked = summary_request[1]["content"]
    listed = asked.split("<current_todo_list>\n")[1].split("\n</current_todo_list>")[0]
    assert json.loads(listed) == stored_todos == todos

    announced = [
        f.data["properties"]
        for f in bus
        if f.data["type"] == "session.compaction"
        and f.data["properties"]["session_id"] == session_id
    ]
    assert [(a["status"], a["trigger"]) for a in announced] == [
        ("started", "tokens"),
        ("completed", "tokens"),
    ]
    assert announced[1]["messages_folded"] == 2 and announced[1]["summary_message_id"]


async def test_failed_compaction_keeps_history_and_the_turn_goes_on(fake, start_server):
    server = start_server(OPENCODE_COMPACT_MESSAGES="4", OPENCODE_MAX_RETRIES="0")
    fake.script(Reply(text="a"), Reply(text="b"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        await send(client, session_id, content="q1")
        await send(client, session_id, content="q2")
        fake.script(Reply(status=500, error_message="summariser down"), Reply(text="c"))
        frames = await send(client, session_id, content="q3")
        compaction = [f.data for f in frames if f.type == "compaction"]
        assert [c["status"] for c in compaction] == ["started", "failed"]
        assert "summariser down" in compaction[1]["error"]
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
        sent = texts(fake.requests[-1].json)
        assert sent[1:] == ["q1", "a", "q2", "b", "q3"]  # the uncompacted context

        status = await compaction_status(client, session_id)
        assert status["status"] == "failed" and "summariser down" in status["error"]
        assert status["summary_message_id"] is None and status["compactions"] == 0
        page = await messages(client, session_id)
        assert [m["content"] for m in page["messages"]] == ["q1", "a", "q2", "b", "q3", "c"]

        # The next turn tries again and succeeds; the status moves on.
        fake.script(Reply(text=SUMMARY), Reply(text="d"))
        await send(client, session_id, content="q4")
        status = await compaction_status(client, session_id)
        assert status["status"] == "completed" and status["error"] is None


async def test_manual_compaction_status_transitions_and_busy_conflicts(fake, server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        missing = await client.post("/session/ses_nope/compact")
        assert missing.status_code == 404 and "ses_nope" in missing.json()["detail"]
        missing = await client.get("/session/ses_nope/compaction-status")
        assert missing.status_code == 404

        session_id = await new_session(client)
        fake.script(Reply(text="a1"))
        await send(client, session_id, content="q1")
        nothing = await client.post(f"/session/{session_id}/compact")
        assert nothing.status_code == 409 and "Nothing to compact" in nothing.json()["detail"]
        status = await compaction_status(client, session_id)
        assert status["status"] == "idle"

        fake.script(Reply(text="a2"))
        await send(client, session_id, content="q2")
        # A slow summary: while it is written the session is busy.
        fake.script(Reply(text=SUMMARY.split(" "), chunk_delay=0.1))
        async with listen_bus(client) as frames:
            compacting = asyncio.create_task(client.post(f"/session/{session_id}/compact"))
            await wait_until(lambda: fake.requests and "You compact" in str(fake.requests[-1].json))
            running = await compaction_status(client, session_id)
            assert running["status"] == "running" and running["trigger"] == "manual"
            busy = await client.post(f"/session/{session_id}/message", json={"content": "hi"})
            assert busy.status_code == 409 and "compacted" in busy.json()["detail"]
            again = await client.post(f"/session/{session_id}/compact")
            assert again.status_code == 409
            assert (await client.get(f"/session/{session_id}")).json()["status"] == "busy"

            done = await compacting
            assert done.status_code == 200, done.text
            body = done.json()
            assert body["status"] == "completed" and body["messages_folded"] == 2
            assert body["summary_message_id"]
            await wait_until(lambda: compaction_statuses(frames)[-1:] == ["completed"])
        bus = [f.data["properties"] for f in frames if f.data["type"] == "session.compaction"]
        assert [b["status"] for b in bus] == ["started", "completed"]
        assert all(b["session_id"] == session_id for b in bus)
        assert bus[1]["summary_message_id"] == body["summary_message_id"]

        page = await messages(client, session_id)
        assert page["total_count"] == 5
        assert page["messages"][-1]["parts"][0]["type"] == "compaction"

        # While a turn runs, compaction is refused.
        fake.script(Reply(text=["x", "y", "z"], hang_after=1))
        async with open_turn(client, session_id, content="q3") as reader:
            await reader.until_type("text")
            conflict = await client.post(f"/session/{session_id}/compact")
            assert conflict.status_code == 409 and "being generated" in conflict.json()["detail"]
            await client.post(f"/session/{session_id}/abort")
            await reader.rest()


async def test_pagination_over_a_compacted_session(fake, start_server):
    server = start_server(OPENCODE_COMPACT_MESSAGES="4")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        for number in range(1, 7):
            if number >= 3:  # from then on 4 messages since the last summary + the new one
                fake.script(Reply(text=SUMMARY))
            fake.script(Reply(text=f"a{number}"))
            await send(client, session_id, content=f"q{number}")
        page = await messages(client, session_id)
        kinds = [
            "summary" if m["parts"][0]["type"] == "compaction" else m["content"]
            for m in page["messages"]
        ]
        total = page["total_count"]
        assert total == len(kinds) == 16 and kinds.count("summary") == 4
        assert [k for k in kinds if k != "summary"] == [
            text for n in range(1, 7) for text in (f"q{n}", f"a{n}")
        ]
        status = await compaction_status(client, session_id)
        assert status["compactions"] == kinds.count("summary")

        # Pages in both orders cover the same messages, the summaries where they happened.
        walked = []
        for offset in range(0, total, 3):
            walked += (await messages(client, session_id, limit=3, offset=offset))["messages"]
        assert [m["id"] for m in walked] == [m["id"] for m in page["messages"]]
        newest = await messages(client, session_id, limit=3, order="desc")
        assert [m["id"] for m in newest["messages"]] == [
            m["id"] for m in reversed(page["messages"][-3:])
        ]
        assert newest["total_count"] == total and newest["limit"] == 3


async def test_old_tool_outputs_are_pruned_from_the_request_not_from_history(fake, server):
    # Each todo tool output here is ~15,000 tokens; a request carries at most 40,000 tokens of
    # tool output (gpt-4o-mini), so by the fourth step the oldest output is pruned.
    todos = [{"id": "1", "content": "p" * 60_000, "status": "pending", "priority": "low"}]
    fake.script(
        Reply(tool_calls=[("call_w", "todowrite", {"todos": todos})]),
        Reply(tool_calls=[("call_r1", "todoread", {})]),
        Reply(tool_calls=[("call_r2", "todoread", {})]),
        Reply(text="All read."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="write it and read it twice")
        assert frames[-1].type == "done"
        assert not any(f.type == "compaction" for f in frames)

        tool_outputs = {m["tool_call_id"]: m["content"] for m in fake.requests[-1].tool_messages()}
        assert tool_outputs["call_w"] == PRUNED
        assert len(tool_outputs["call_r1"]) > 60_000 and len(tool_outputs["call_r2"]) > 60_000
        third_step = fake.requests[-2].tool_messages()  # two outputs fitted the budget then
        assert [m["tool_call_id"] for m in third_step] == ["call_w", "call_r1"]
        assert all(m["content"] != PRUNED for m in third_step)

        (_, reply_message) = (await messages(client, session_id))["messages"]
        outputs = [p["output"] for p in reply_message["parts"] if p["type"] == "tool"]
        assert len(outputs) == 3 and all(len(output) > 60_000 for output in outputs)


async def compaction_in_flight(client: httpx.AsyncClient, fake) -> tuple[str, asyncio.Task]:
    """A session of two exchanges whose manual compaction is stuck in the summary call."""
    fake.script(Reply(text="a1"), Reply(text="a2"), Reply(text=["partial"], hang_after=1))
    session_id = await new_session(client)
    await send(client, session_id, content="q1")
    await send(client, session_id, content="q2")
    compacting = asyncio.create_task(client.post(f"/session/{session_id}/compact"))
    await wait_until(lambda: fake.open_streams == 1)
    return session_id, compacting


async def test_a_crash_during_compaction_leaves_the_session_usable(fake, start_server):
    server = start_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id, compacting = await compaction_in_flight(client, fake)
        server.kill()
        with pytest.raises(httpx.HTTPError):
            await compacting

    async with (
        restarted(server) as again,
        httpx.AsyncClient(base_url=again.url, timeout=30) as client,
    ):
        status = await compaction_status(client, session_id)
        assert status["status"] == "failed" and "stopped" in status["error"]
        page = await messages(client, session_id)
        assert [m["content"] for m in page["messages"]] == ["q1", "a1", "q2", "a2"]
        fake.script(Reply(text="a3"))
        frames = await send(client, session_id, content="q3")
        assert frames[-1].type == "done"
        assert texts(fake.requests[-1].json)[1:] == ["q1", "a1", "q2", "a2", "q3"]


async def test_abort_stops_a_manual_compaction(fake, server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id, compacting = await compaction_in_flight(client, fake)
        aborted = await client.post(f"/session/{session_id}/abort")
        assert aborted.status_code == 200 and aborted.json()["aborted"] is True
        response = await compacting
        assert response.status_code == 409 and "aborted" in response.json()["detail"]
        assert fake.wait_closed()  # the summary's provider stream was closed

        status = await compaction_status(client, session_id)
        assert status["status"] == "failed" and "Aborted" in status["error"]
        assert (await client.get(f"/session/{session_id}")).json()["status"] == "idle"
        assert (await messages(client, session_id))["total_count"] == 4


@pytest.mark.parametrize(
    ("provider_id", "model_id"),
    [("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash")],
)
async def test_the_compacted_view_is_a_valid_request_in_every_dialect(
    fake, start_server, provider_id, model_id
):
    """The summary is a user turn and the kept run starts with one: the request LiteLLM
    sends must still alternate roles (Anthropic and Gemini merge or reject repeats)."""
    server = start_server(OPENCODE_COMPACT_MESSAGES="4")
    fake.script(Reply(text="a1"), Reply(text="a2"), Reply(text=SUMMARY), Reply(text="a3"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client, provider_id=provider_id, model_id=model_id)
        for content in ("q1", "q2", "q3"):
            frames = await send(client, session_id, content=content)
            assert frames[-1].type == "done", frames[-1].data
        assert [f.data["status"] for f in frames if f.type == "compaction"] == [
            "started",
            "completed",
        ]
    request = fake.requests[-1]
    assert request.dialect == provider_id
    if provider_id == "anthropic":
        turns = [(m["role"], json.dumps(m["content"])) for m in request.json["messages"]]
    else:
        turns = [(c["role"], json.dumps(c["parts"])) for c in request.json["contents"]]
    roles = [role for role, _ in turns]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False)), roles
    assert roles[0] == "user" and SUMMARY.split("\n")[0] in turns[0][1]
    assert "q2" in turns[0][1]  # the kept question, merged into the summary's user turn
    assert not any('"q1"' in text or "a1" in text for _, text in turns)


async def test_a_prompt_the_provider_finds_too_long_is_compacted_and_sent_again(fake, server):
    overflow = "This model's maximum context length is 128000 tokens. However, you sent 131000."
    fake.script(Reply(text="a1"), Reply(text="a2"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        await send(client, session_id, content="q1")
        await send(client, session_id, content="q2")
        fake.script(Reply(status=400, error_message=overflow), Reply(text=SUMMARY), Reply("a3"))
        frames = await send(client, session_id, content="q3")
        types = [f.type for f in frames]
        assert types[:4] == ["message_start", "step_start", "compaction", "compaction"]
        assert frames[3].data["status"] == "completed" and frames[3].data["messages_folded"] == 4
        assert types[-1] == "done" and frames[-1].data["stop_reason"] == "stop"
        sent = texts(fake.requests[-1].json)
        assert SUMMARY in sent[1] and sent[2:] == ["q3"]  # every earlier message folded

        # Still too long after folding: one retry per step, then the refusal ends the turn.
        fake.script(
            Reply(status=400, error_message=overflow),
            Reply(text="## Goal\nnewer summary"),
            Reply(status=400, error_message=overflow),
        )
        frames = await send(client, session_id, content="q4 " + "x" * 1000)
        assert [f.data["status"] for f in frames if f.type == "compaction"] == [
            "started",
            "completed",
        ]
        assert frames[-1].type == "error" and "maximum context length" in frames[-1].data["error"]

        # Nothing to fold in a new session: no compaction, the refusal is the turn's error.
        fresh = await new_session(client)
        fake.script(Reply(status=400, error_message=overflow))
        frames = await send(client, fresh, content="q1")
        assert [f.type for f in frames] == ["message_start", "step_start", "error"]
        status = await compaction_status(client, fresh)
        assert status["status"] == "idle"
