"""Runs outlive their connection: disconnect, abort, busy, crash recovery, questions."""

import asyncio
import time

import httpx
import pytest

from tests.e2e.helpers import new_session, open_turn, restarted, send, wait_until
from tests.fakes.provider import Reply
from tests.sse import SSEParser, collect

pytestmark = pytest.mark.timeout(90)
E2E_STORES = ("sqlite", "postgres", "supabase")  # tests/conftest.py: each test on each


async def message_by_id(client: httpx.AsyncClient, session_id: str, message_id: str) -> dict:
    page = (await client.get(f"/session/{session_id}/message")).json()
    return next(m for m in page["messages"] if m["id"] == message_id)


async def wait_for_status(client, session_id, message_id, statuses, timeout=10.0) -> dict:
    """The message once its status is one of ``statuses`` (polled through the API)."""
    seen: list[dict] = []

    async def reached() -> bool:
        seen.append(await message_by_id(client, session_id, message_id))
        return seen[-1]["status"] in statuses

    try:
        await wait_until(reached, timeout)
    except AssertionError:
        raise AssertionError(f"message {message_id} stayed {seen[-1]['status']}") from None
    return seen[-1]


async def test_reply_survives_client_disconnect(fake, server):
    fake.script(Reply(text=[f"w{i} " for i in range(10)], chunk_delay=0.1))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="x") as reader:
            first = await reader.until_type("text")
        message_id = first[0].data["message_id"]
        # the client is gone; the run goes on and stores the whole reply
        message = await wait_for_status(client, session_id, message_id, {"completed"})
        assert message["content"] == "".join(f"w{i} " for i in range(10))
        assert (await client.get(f"/session/{session_id}")).json()["status"] == "idle"


async def test_abort_keeps_partial_text_and_closes_the_provider_stream(fake, server):
    fake.script(Reply(text=["partial ", "answer ", "never"], hang_after=2))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="x") as reader:
            frames = await reader.until(lambda _: reader.text() == "partial answer ")
            # busy: a second message is refused with the running message's id
            busy = await client.post(f"/session/{session_id}/message", json={"content": "y"})
            assert busy.status_code == 409
            assert busy.json()["message_id"] == frames[0].data["message_id"]
            assert busy.json()["error"] == "conflict"

            assert fake.open_streams == 1  # so wait_closed below proves the abort closed it
            started = time.monotonic()
            aborted = await client.post(f"/session/{session_id}/abort")
            assert aborted.json() == {
                "session_id": session_id,
                "aborted": True,
                "message_id": frames[0].data["message_id"],
            }
            frames = await reader.rest()
            assert time.monotonic() - started < 1.0  # from the abort to the stream's end
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "aborted"
        assert fake.wait_closed(1.0)

        page = (await client.get(f"/session/{session_id}/message")).json()
        assistant = page["messages"][1]
        assert assistant["status"] == "aborted" and assistant["content"] == "partial answer "
        # aborting an idle session is harmless, and the session takes new messages
        idle = await client.post(f"/session/{session_id}/abort")
        assert idle.status_code == 200 and idle.json()["aborted"] is False
        fake.script(Reply(text="again"))
        assert (await send(client, session_id, content="z"))[-1].type == "done"
        # the replayed history holds the partial reply
        replay = fake.requests[-1].json["messages"]
        assert {"role": "assistant", "content": "partial answer "}.items() <= replay[-2].items()


async def test_crash_mid_turn_then_restart(fake, start_server):
    server = start_server()
    fake.script(Reply(text=["before crash "], hang_after=1))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="x") as reader:
            frames = await reader.until_type("text")
            await asyncio.sleep(1.2)  # let the draft flush
            server.kill()
    message_id = frames[0].data["message_id"]

    async with restarted(server) as again:
        fake.script(Reply(text="fresh"))
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            message = await message_by_id(client, session_id, message_id)
            assert message["status"] == "error" and "interrupted" in message["error"].lower()
            assert (await client.get(f"/session/{session_id}")).json()["status"] == "idle"
            frames = await send(client, session_id, content="y")
            assert frames[-1].type == "done"


QUESTION = {
    "question": "Which color?",
    "header": "Color",
    "options": [{"label": "red", "description": ""}, {"label": "blue", "description": ""}],
    "multiple": False,
}


async def test_question_round_trip_and_reconnect(fake, server):
    fake.script(
        Reply(tool_calls=[("call_q", "question", {"questions": [QUESTION]})]),
        Reply(text="Blue it is."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="x") as reader:
            frames = await reader.until_type("question")
        asked = frames[-1].data
        assert asked["questions"][0]["question"] == "Which color?"
        # the client went away; the question is still pending and listed
        pending = (await client.get("/question")).json()
        assert [q["id"] for q in pending] == [asked["question_id"]]
        assert pending[0]["session_id"] == session_id
        # re-attach to the running turn, then answer
        async with client.stream(
            "GET", f"/session/{session_id}/stream", headers={"Last-Event-ID": frames[-1].id}
        ) as r:
            bad = await client.post(f"/question/{asked['question_id']}/reply", json={"answers": []})
            assert bad.status_code == 422
            ok = await client.post(
                f"/question/{asked['question_id']}/reply", json={"answers": [["blue"]]}
            )
            assert ok.status_code == 200
            rest = await collect(r)
        result = next(f.data for f in rest if f.type == "tool_result")
        assert result["is_error"] is False and "blue" in result["text"]
        assert rest[-1].type == "done"
        assert (await client.get("/question")).json() == []
        again = await client.post(
            f"/question/{asked['question_id']}/reply", json={"answers": [["red"]]}
        )
        assert again.status_code == 409
        assert (
            await client.post("/question/que_nope/reply", json={"answers": [["x"]]})
        ).status_code == 404


async def test_question_reject_returns_dismissed_error_to_the_model(fake, server):
    fake.script(
        Reply(tool_calls=[("call_q", "question", {"questions": [QUESTION]})]),
        Reply(text="OK, skipping."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="x") as reader:
            asked = (await reader.until_type("question"))[-1]
            rejected = await client.post(f"/question/{asked.data['question_id']}/reject")
            assert rejected.status_code == 200
            frames = await reader.rest()
        result = next(f.data for f in frames if f.type == "tool_result")
        assert result["is_error"] is True and "dismissed" in result["text"]
        assert frames[-1].type == "done"


async def test_keepalive_comments_while_waiting(fake, start_server):
    server = start_server(OPENCODE_KEEPALIVE_SECONDS="0.2")
    fake.script(Reply(text=["a"], hang_after=1))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with client.stream(
            "POST", f"/session/{session_id}/message", json={"content": "x"}
        ) as r:
            parser = SSEParser()
            started = time.monotonic()
            async for line in r.aiter_lines():
                parser.feed(line)
                if len(parser.comments) >= 2 or time.monotonic() - started > 5:
                    break
        assert len(parser.comments) >= 2
        await client.post(f"/session/{session_id}/abort")


async def test_graceful_shutdown_keeps_the_partial_reply(fake, start_server):
    server = start_server(OPENCODE_SHUTDOWN_GRACE="1")
    fake.script(Reply(text=["kept ", "text "], hang_after=2))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="x") as reader:
            await reader.until(lambda frames: reader.text() == "kept text ")
            started = time.monotonic()
            _, frames = await asyncio.gather(asyncio.to_thread(server.stop), reader.rest())
            assert time.monotonic() - started < 10
    assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "shutdown"
    async with restarted(server) as again:
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            page = (await client.get(f"/session/{session_id}/message")).json()
        assistant = page["messages"][1]
        assert assistant["status"] == "aborted" and assistant["content"] == "kept text "
