"""Request options and run semantics through the real server: delete, system, tools,
concurrent tool calls, retries, abort and timeout of questions, cost per model, app.py."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import by_type, listen_bus, new_session, send, wait_until
from tests.e2e.server import ROOT, free_port
from tests.fakes.provider import Reply
from tests.sse import FrameReader

pytestmark = pytest.mark.timeout(90)


def question(text: str) -> dict:
    return {
        "question": text,
        "header": text[:12],
        "options": [{"label": "yes", "description": ""}, {"label": "no", "description": ""}],
        "multiple": False,
    }


async def pending_for(client: httpx.AsyncClient, session_id: str) -> list[dict]:
    response = await client.get("/question", params={"session_id": session_id})
    assert response.status_code == 200, response.text
    return response.json()


async def test_delete_removes_messages_todos_and_pending_questions(fake, server):
    todos = [{"id": "1", "content": "ship it", "status": "pending", "priority": "high"}]
    fake.script(
        Reply(tool_calls=[("call_todo", "todowrite", {"todos": todos})]),
        Reply(tool_calls=[("call_q", "question", {"questions": [question("Proceed?")]})]),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with client.stream(
            "POST", f"/session/{session_id}/message", json={"content": "plan"}
        ) as response:
            reader = FrameReader(response)
            frames = await reader.until(lambda frames: frames[-1].type == "question")
            question_id = frames[-1].data["question_id"]
            assert (await client.get(f"/session/{session_id}/todo")).json() == todos
            assert [q["id"] for q in await pending_for(client, session_id)] == [question_id]

            deleted = await client.delete(f"/session/{session_id}")
            assert deleted.json() == {"id": session_id, "deleted": True}
            await reader.rest()

        for path in ("", "/message", "/todo"):
            gone = await client.get(f"/session/{session_id}{path}")
            assert gone.status_code == 404, (path, gone.text)
            assert gone.json()["error"] == "not_found"
        assert await pending_for(client, session_id) == []
        everyone = (await client.get("/question")).json()
        assert question_id not in [q["id"] for q in everyone]
        answer = await client.post(f"/question/{question_id}/reply", json={"answers": [["yes"]]})
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"


async def test_system_prompt_reaches_the_model(fake, server):
    fake.script(Reply(text="ok"), Reply(text="ok"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="Hi", system="Be terse")
        assert frames[-1].type == "done"
        sent = fake.requests[-1].json["messages"]
        assert sent[0] == {"role": "system", "content": "Be terse"}
        assert sent[1:] == [{"role": "user", "content": "Hi"}]

        # the option is per turn: the next turn without it gets the built-in prompt
        await send(client, session_id, content="again")
        default = fake.requests[-1].json["messages"][0]
        assert default["role"] == "system" and default["content"] != "Be terse"
        assert default["content"].startswith("You are OpenCode")


async def test_tools_option_advertises_only_the_named_tools(fake, server):
    fake.script(Reply(text="ok"), Reply(text="ok"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="Hi", tools=["todoread"])
        assert frames[-1].type == "done"
        advertised = fake.requests[-1].json["tools"]
        assert [t["function"]["name"] for t in advertised] == ["todoread"]
        assert advertised[0]["type"] == "function"

        await send(client, session_id, content="all of them")
        names = {t["function"]["name"] for t in fake.requests[-1].json["tools"]}
        assert {"todoread", "todowrite", "question"} <= names

        unknown = await client.post(
            f"/session/{session_id}/message", json={"content": "x", "tools": ["nope"]}
        )
        assert unknown.status_code == 422
        assert unknown.json()["detail"].startswith("Unknown tools: nope.")


async def test_tool_calls_of_one_step_run_concurrently(fake, server):
    fake.script(
        Reply(
            tool_calls=[
                ("call_a", "question", {"questions": [question("First?")]}),
                ("call_b", "question", {"questions": [question("Second?")]}),
            ]
        ),
        Reply(text="Both answered."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with client.stream(
            "POST", f"/session/{session_id}/message", json={"content": "ask twice"}
        ) as response:
            reader = FrameReader(response)
            await reader.until(lambda frames: [f.type for f in frames].count("question") == 2)
            # both tools are waiting at the same time: neither blocks the other
            pending = await pending_for(client, session_id)
            by_call = {q["tool_call_id"]: q for q in pending}
            assert sorted(by_call) == ["call_a", "call_b"]
            assert by_call["call_a"]["questions"][0]["question"] == "First?"
            assert by_call["call_b"]["questions"][0]["question"] == "Second?"

            for call_id, label in (("call_b", "no"), ("call_a", "yes")):
                reply = await client.post(
                    f"/question/{by_call[call_id]['id']}/reply", json={"answers": [[label]]}
                )
                assert reply.status_code == 200, reply.text
            frames = await reader.rest()

    grouped = by_type(frames)
    results = {r["tool_call_id"]: r for r in grouped["tool_result"]}
    assert sorted(results) == ["call_a", "call_b"]
    assert results["call_a"]["is_error"] is False and "yes" in results["call_a"]["text"]
    assert results["call_b"]["is_error"] is False and "no" in results["call_b"]["text"]
    assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
    assert [d["step_number"] for d in grouped["step_start"]] == [1, 2]
    tool_messages = [m for m in fake.requests[-1].json["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_a", "call_b"]


async def test_retry_after_is_honoured_and_announced(fake, server):
    fake.script(Reply(status=429, retry_after="1", error_message="slow down"), Reply(text="ok"))
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        listen_bus(client) as bus,
    ):
        session_id = await new_session(client)
        started = time.monotonic()
        frames = await send(client, session_id, content="hi")
        elapsed = time.monotonic() - started
        await wait_until(
            lambda: any(
                f.data["type"] == "session.status"
                and f.data["properties"]["status"] == "idle"
                and f.data["properties"]["session_id"] == session_id
                for f in bus
            )
        )
    statuses = [
        f.data["properties"]
        for f in bus
        if f.data["type"] == "session.status" and f.data["properties"]["session_id"] == session_id
    ]
    assert [s["status"] for s in statuses] == ["busy", "retry", "idle"]
    assert statuses[1]["delay"] == 1 and statuses[1]["attempt"] == 1
    assert "slow down" in statuses[1]["message"]
    assert elapsed >= 1.0  # the server waited Retry-After, not its 0.01 s base delay
    assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
    assert "".join(d["text"] for d in by_type(frames)["text"]) == "ok"
    assert len(fake.requests) == 2


async def test_stream_failing_after_first_chunk_is_not_retried(fake, server):
    fake.script(Reply(text=["first ", "second"], fail_after=1), Reply(text="must not be used"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="hi")
        assert frames[-1].type == "error" and frames[-1].data["error"]
        assert "done" not in [f.type for f in frames]
        assert [d["text"] for d in by_type(frames)["text"]] == ["first "]
        assert len(fake.requests) == 1
        page = (await client.get(f"/session/{session_id}/message")).json()
        assert page["messages"][1]["status"] == "error"


async def abort_during_question(client: httpx.AsyncClient, fake) -> tuple[str, str, list]:
    """Start a turn whose only tool call is a question, abort while it waits; returns
    (session_id, question_id, the stream's frames)."""
    fake.script(Reply(tool_calls=[("call_q", "question", {"questions": [question("Go?")]})]))
    session_id = await new_session(client)
    async with client.stream(
        "POST", f"/session/{session_id}/message", json={"content": "x"}
    ) as response:
        reader = FrameReader(response)
        frames = await reader.until(lambda frames: frames[-1].type == "question")
        question_id = frames[-1].data["question_id"]
        assert [q["id"] for q in await pending_for(client, session_id)] == [question_id]

        aborted = await client.post(f"/session/{session_id}/abort")
        assert aborted.status_code == 200 and aborted.json()["aborted"] is True
        frames = await reader.rest()
    return session_id, question_id, frames


async def test_abort_while_a_question_is_pending(fake, server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id, question_id, frames = await abort_during_question(client, fake)

        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "aborted"
        assert "tool_result" not in [f.type for f in frames]
        assert await pending_for(client, session_id) == []
        late = await client.post(f"/question/{question_id}/reply", json={"answers": [["yes"]]})
        assert late.status_code == 409
        page = (await client.get(f"/session/{session_id}/message")).json()
        assert page["messages"][1]["status"] == "aborted"
        assert (await client.get(f"/session/{session_id}")).json()["status"] == "idle"
    assert len(fake.requests) == 1


async def test_abort_settles_the_stored_tool_part(fake, server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id, _, _ = await abort_during_question(client, fake)
        page = (await client.get(f"/session/{session_id}/message")).json()
    tools = [p for p in page["messages"][1]["parts"] if p["type"] == "tool"]
    assert [t["call_id"] for t in tools] == ["call_q"]
    assert tools[0]["state"] == "error"
    assert tools[0]["output"] == "Tool execution was interrupted before it finished."


async def test_unanswered_question_times_out_as_an_error_result(fake, start_server):
    server = start_server(OPENCODE_QUESTION_TIMEOUT="0.3")
    fake.script(
        Reply(tool_calls=[("call_q", "question", {"questions": [question("Anyone?")]})]),
        Reply(text="No answer, moving on."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="x")
        grouped = by_type(frames)
        assert len(grouped["question"]) == 1
        result = grouped["tool_result"][0]
        assert result["tool_call_id"] == "call_q" and result["is_error"] is True
        assert "did not answer within 0.3 seconds" in result["text"]
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
        assert await pending_for(client, session_id) == []
    tool_message = [m for m in fake.requests[-1].json["messages"] if m["role"] == "tool"][0]
    assert tool_message["tool_call_id"] == "call_q"
    assert "did not answer" in tool_message["content"]


async def test_cost_breaks_down_by_model_with_reasoning_tokens(fake, server):
    fake.script(
        Reply(text="from openai", input_tokens=100, output_tokens=40, reasoning_tokens=15),
        Reply(text="from anthropic", input_tokens=200, output_tokens=30),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        first = await send(client, session_id, content="one")
        second = await send(
            client,
            session_id,
            content="two",
            provider_id="anthropic",
            model_id="claude-sonnet-4-5",
        )
        assert first[-1].type == "done" and second[-1].type == "done"
        assert fake.requests[0].dialect == "openai"
        assert fake.requests[1].dialect == "anthropic"
        openai_cost, anthropic_cost = first[-1].data["cost"], second[-1].data["cost"]
        assert openai_cost > 0 and anthropic_cost > 0
        assert first[-1].data["usage"]["reasoning_tokens"] == 15

        cost = (await client.get(f"/session/{session_id}/cost")).json()
    models = {m["model"]: m for m in cost["models"]}
    assert sorted(models) == ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"]
    openai, anthropic = models["openai/gpt-4o-mini"], models["anthropic/claude-sonnet-4-5"]
    assert (openai["input_tokens"], openai["output_tokens"], openai["reasoning_tokens"]) == (
        100,
        40,
        15,
    )
    assert (anthropic["input_tokens"], anthropic["output_tokens"]) == (200, 30)
    assert openai["steps"] == anthropic["steps"] == 1
    assert openai["cost"] == openai_cost and anthropic["cost"] == anthropic_cost
    assert cost["total_cost"] == pytest.approx(openai_cost + anthropic_cost, rel=1e-12)
    assert cost["input_tokens"] == 300 and cost["output_tokens"] == 70
    assert cost["reasoning_tokens"] == 15 + anthropic["reasoning_tokens"]
    for field in ("cache_read_tokens", "cache_write_tokens"):
        assert cost[field] == sum(m[field] for m in cost["models"])


def test_python_app_py_serves_on_port(tmp_path: Path):
    """The e2e server runs ``uvicorn app:app``; this checks the ``python app.py`` entry point."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_API_KEY", "_API_BASE", "_BASE_URL"))
        and not key.startswith("OPENCODE_")
    }
    env.update(
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}",
        PYTHONPATH=str(ROOT),
        OPENCODE_LOG_LEVEL="WARNING",
    )
    log_path = tmp_path / "app.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health is not None, log_path.read_text(errors="replace")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert (tmp_path / "app.db").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
