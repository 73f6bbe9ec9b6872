"""A turn through the real server: streaming, tools, cost, persistence."""

import httpx
import pytest

from tests.e2e.helpers import by_type, new_session, send
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)
E2E_STORES = ("sqlite", "postgres", "supabase")  # tests/conftest.py: each test on each


async def test_text_turn_streams_every_event_and_is_stored(fake, server):
    fake.script(Reply(text=["Hel", "lo ", "there"], input_tokens=12, output_tokens=7))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client, title="greeting")
        frames = await send(client, session_id, content="Hi")

        types = [f.type for f in frames]
        assert types == [
            "message_start",
            "step_start",
            "text",
            "text",
            "text",
            "step_finish",
            "done",
        ]
        ids = [int(f.id) for f in frames]
        assert ids == sorted(set(ids))  # they only grow
        assert all(f.event == f.type for f in frames)
        start, step, *_, finish, done = (f.data for f in frames)
        assert step == {"type": "step_start", "step_number": 1, "max_steps": 25}
        assert "".join(f.data["text"] for f in frames if f.type == "text") == "Hello there"
        assert finish["stop_reason"] == "stop" and finish["usage"]["input_tokens"] == 12
        assert done["stop_reason"] == "stop"
        assert done["message_id"] == start["message_id"]
        assert done["usage"]["input_tokens"] == 12 and done["usage"]["output_tokens"] == 7
        assert done["cost"] == finish["cost"] > 0

        page = (await client.get(f"/session/{session_id}/message")).json()
        assert page["total_count"] == 2 and page["limit"] is None and page["offset"] == 0
        user, assistant = page["messages"]
        assert user["role"] == "user" and user["content"] == "Hi"
        assert assistant["id"] == start["message_id"] and assistant["parent_id"] == user["id"]
        assert start["parent_id"] == user["id"]
        assert assistant["status"] == "completed" and assistant["content"] == "Hello there"
        assert assistant["model"] == "openai/gpt-4o-mini"
        assert [p["type"] for p in assistant["parts"]] == ["step-start", "text", "step-finish"]
        assert assistant["cost"] == done["cost"]

        cost = (await client.get(f"/session/{session_id}/cost")).json()
        assert cost["total_cost"] == finish["cost"]
        assert cost["input_tokens"] == 12 and cost["output_tokens"] == 7
        assert cost["models"][0]["model"] == "openai/gpt-4o-mini"

    sent = fake.requests[-1].json
    assert sent["stream"] is True and sent["messages"][-1] == {"role": "user", "content": "Hi"}


async def test_tool_calls_run_and_the_turn_continues(fake, server):
    todos = [{"id": "1", "content": "write tests", "status": "in_progress", "priority": "high"}]
    fake.script(
        Reply(
            tool_calls=[
                ("call_todo", "todowrite", {"todos": todos}),
                ("call_bad", "no_such_tool", {}),
                ("call_args", "todowrite", {"todos": "not a list"}),
            ]
        ),
        Reply(text="All set."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        grouped = by_type(await send(client, session_id, content="Plan it"))

        calls = [d["tool_call"] for d in grouped["tool_call"]]
        assert [c["id"] for c in calls] == ["call_todo", "call_bad", "call_args"]
        assert calls[0]["arguments"] == {"todos": todos}
        results = {d["tool_call_id"]: d for d in grouped["tool_result"]}
        assert results["call_todo"]["is_error"] is False
        assert (
            results["call_bad"]["is_error"] is True and "todowrite" in results["call_bad"]["text"]
        )
        assert results["call_args"]["is_error"] is True
        assert [d["stop_reason"] for d in grouped["step_finish"]] == ["tool_calls", "stop"]
        assert grouped["done"][0]["stop_reason"] == "stop"
        done_cost = grouped["done"][0]["cost"]
        assert done_cost == grouped["step_finish"][0]["cost"] + grouped["step_finish"][1]["cost"]

        assert (await client.get(f"/session/{session_id}/todo")).json() == todos
        cost = (await client.get(f"/session/{session_id}/cost")).json()
        assert cost["total_cost"] == done_cost and cost["models"][0]["steps"] == 2

        page = (await client.get(f"/session/{session_id}/message", params={"order": "desc"})).json()
        assistant = page["messages"][0]
        tools = [p for p in assistant["parts"] if p["type"] == "tool"]
        assert [(t["call_id"], t["state"]) for t in tools] == [
            ("call_todo", "completed"),
            ("call_bad", "error"),
            ("call_args", "error"),
        ]

    # The second step saw the tool results, in call order.
    tool_messages = fake.requests[-1].tool_messages()
    assert [m["tool_call_id"] for m in tool_messages] == ["call_todo", "call_bad", "call_args"]


async def test_max_steps_ends_the_turn(fake, server):
    fake.script(
        Reply(tool_calls=[("c1", "todoread", {})]), Reply(tool_calls=[("c2", "todoread", {})])
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="loop", max_steps=2)
    assert [f.data["step_number"] for f in frames if f.type == "step_start"] == [1, 2]
    assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "max_steps"


async def test_provider_failure_sends_error_and_session_stays_usable(fake, start_server):
    server = start_server(OPENCODE_MAX_RETRIES="2")
    fake.script(Reply(status=503), Reply(status=503), Reply(status=503), Reply(text="back"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="one")
        assert frames[-1].type == "error" and frames[-1].data["error"]
        assert "done" not in [f.type for f in frames]
        page = (await client.get(f"/session/{session_id}/message")).json()
        assert page["messages"][1]["status"] == "error"

        frames = await send(client, session_id, content="two")
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
    assert len(fake.requests) == 4  # one try + two retries, then the next turn


async def test_retry_recovers_transparently(fake, server):
    fake.script(Reply(status=429, retry_after="0"), Reply(text="ok"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="hi")
    assert frames[-1].type == "done"
    assert "".join(f.data["text"] for f in frames if f.type == "text") == "ok"


@pytest.mark.parametrize(
    "model", ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "openai/gpt-4o-mini"]
)
async def test_every_provider_streams_reasoning_and_text(fake, server, model):
    fake.script(
        Reply(reasoning="Let me think.", tool_calls=[("toolu_1", "todoread", {})]),
        Reply(text="Done thinking."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="think", model_id=model)
        assert "".join(f.data["text"] for f in frames if f.type == "reasoning") == "Let me think."
        assert frames[-1].type == "done" and frames[-1].data["cost"] > 0
        page = (await client.get(f"/session/{session_id}/message")).json()
        reasoning = [p for p in page["messages"][1]["parts"] if p["type"] == "reasoning"]
        assert reasoning[0]["text"] == "Let me think."
    if model.startswith("anthropic/"):
        # the thinking block and its signature were replayed with the tool result
        assistant = [m for m in fake.requests[-1].json["messages"] if m["role"] == "assistant"][0]
        thinking = [b for b in assistant["content"] if b["type"] == "thinking"]
        assert thinking and thinking[0]["signature"] == "sig-fake"


async def test_reasoning_effort_turns_on_thinking(fake, start_server):
    server = start_server(OPENCODE_MODEL="anthropic/claude-sonnet-4-5")
    fake.script(Reply(reasoning="deep", text="answer"), Reply(text="plain"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="think hard", reasoning_effort="low")
        assert frames[-1].type == "done"
        thinking = fake.requests[-1].json["thinking"]
        assert thinking["type"] == "enabled" and thinking["budget_tokens"] > 0

        frames = await send(
            client,
            session_id,
            content="and you?",
            provider_id="openai",
            model_id="gpt-5-mini",
            reasoning_effort="high",
        )
        assert frames[-1].type == "done"
        assert fake.requests[-1].json["reasoning_effort"] == "high"

        refused = await client.post(
            f"/session/{session_id}/message",
            json={"content": "x", "model_id": "openai/gpt-4o-mini", "reasoning_effort": "low"},
        )
        assert refused.status_code == 400 and "reasoning" in refused.json()["detail"]


async def test_local_openai_compatible_server_with_any_model_name(fake, start_server):
    server = start_server(
        OPENAI_API_BASE="",
        OPENAI_BASE_URL=fake.openai_base,
        OPENCODE_MODEL="openai/my-local-llama",
        ANTHROPIC_API_KEY="",
        GEMINI_API_KEY="",
    )
    fake.script(Reply(text="local hello"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        providers = {p["id"]: p for p in (await client.get("/provider")).json()}
        assert providers["openai"]["api_base"] == fake.openai_base
        assert providers["anthropic"]["configured"] is False
        session_id = await new_session(client)
        frames = await send(client, session_id, content="hi")
        assert frames[0].data["model"] == "openai/my-local-llama"
        assert frames[-1].type == "done" and frames[-1].data["cost"] == 0
    assert fake.requests[-1].json["model"] == "my-local-llama"
