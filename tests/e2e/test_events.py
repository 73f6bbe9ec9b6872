"""``GET /event`` (the bus) and title generation through the real server."""

import httpx
import pytest

from tests.e2e.helpers import listen_bus, new_session, send, wait_until
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)
E2E_STORES = ("sqlite", "postgres")  # tests/conftest.py: each test runs on both


async def test_bus_carries_session_message_and_todo_events(fake, server):
    todos = [{"id": "a", "content": "x", "status": "pending", "priority": "low"}]
    fake.script(Reply(tool_calls=[("t1", "todowrite", {"todos": todos})]), Reply(text="hi there"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with listen_bus(client) as frames:
            assert frames[0].data["type"] == "server.connected"
            session_id = await new_session(client)
            await send(client, session_id, content="yo")
            await wait_until(
                lambda: any(
                    f.data["type"] == "session.status" and f.data["properties"]["status"] == "idle"
                    for f in frames
                )
            )
            await client.patch(f"/session/{session_id}", json={"title": "t"})
            await client.delete(f"/session/{session_id}")
            await wait_until(lambda: frames[-1].data["type"] == "session.deleted")

        types = [f.data["type"] for f in frames[1:]]
        for expected in [
            "session.created",
            "message.created",
            "message.part.delta",
            "message.updated",
            "todo.updated",
            "session.updated",
            "session.deleted",
        ]:
            assert expected in types, expected
        statuses = [
            f.data["properties"]["status"] for f in frames if f.data["type"] == "session.status"
        ]
        assert statuses == ["busy", "idle"]
        deltas = [
            f.data["properties"]["delta"] for f in frames if f.data["type"] == "message.part.delta"
        ]
        assert "".join(deltas) == "hi there"
        todo_event = next(f for f in frames if f.data["type"] == "todo.updated")
        assert todo_event.data["properties"] == {"session_id": session_id, "todos": todos}
        ids = [int(f.id) for f in frames[1:]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # reconnecting with Last-Event-ID replays what came after it
        async with listen_bus(client, {"Last-Event-ID": str(ids[-3])}) as replayed:
            await wait_until(lambda: len(replayed) >= 3)
        assert [int(f.id) for f in replayed[1:3]] == ids[-2:]


async def test_a_session_filter_sends_only_that_sessions_events(fake, server):
    fake.script(Reply(text="for one"), Reply(text="for two"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        one, two = await new_session(client), await new_session(client)
        missing = await client.get("/event", params={"session_id": "ses_nope"})
        assert missing.status_code == 404 and "error" in missing.json()
        async with listen_bus(client, params={"session_id": one}) as frames:
            await send(client, two, content="first")
            await send(client, one, content="second")
            await wait_until(
                lambda: any(
                    f.data["type"] == "session.status" and f.data["properties"]["status"] == "idle"
                    for f in frames
                )
            )
        named = {
            f.data["properties"].get("session_id", f.data["properties"].get("id"))
            for f in frames[1:]
        }
        assert named == {one}
        deltas = [
            f.data["properties"]["delta"] for f in frames if f.data["type"] == "message.part.delta"
        ]
        assert "".join(deltas) == "for two"


async def test_generate_title(fake, start_server):
    server = start_server(OPENCODE_TITLE_MODEL="anthropic/claude-haiku-4-5")
    fake.script(Reply(text="Sure, here you go"), Reply(text='"Planning A Garden Party."'))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        empty = await client.post(f"/session/{session_id}/generate-title")
        assert empty.status_code == 409 and empty.json()["error"] == "conflict"
        await send(client, session_id, content="Help me plan a garden party")
        titled = await client.post(f"/session/{session_id}/generate-title")
        assert titled.status_code == 200
        assert titled.json() == {"session_id": session_id, "title": "Planning A Garden Party"}
        assert (await client.get(f"/session/{session_id}")).json()[
            "title"
        ] == "Planning A Garden Party"
    request = fake.requests[-1]
    assert request.dialect == "anthropic" and request.json["model"] == "claude-haiku-4-5"
    assert "garden party" in str(request.json["messages"])

    fake.script(Reply(status=400, error_message="bad request from provider"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        failed = await client.post(f"/session/{session_id}/generate-title")
        assert failed.status_code == 502 and failed.json()["error"] == "provider_error"
        assert "bad request from provider" in failed.json()["detail"]
        assert (await client.get(f"/session/{session_id}")).json()[
            "title"
        ] == "Planning A Garden Party"


async def test_retries_are_announced_on_the_bus(fake, server):
    fake.script(Reply(status=429, retry_after="0", error_message="slow down"), Reply(text="ok"))
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        listen_bus(client) as frames,
    ):
        session_id = await new_session(client)
        assert (await send(client, session_id, content="hi"))[-1].type == "done"
        await wait_until(
            lambda: any(f.data["properties"].get("status") == "idle" for f in frames[1:])
        )
    statuses = [f.data["properties"] for f in frames if f.data["type"] == "session.status"]
    assert [s["status"] for s in statuses] == ["busy", "retry", "idle"]
    retry = statuses[1]
    assert retry["session_id"] == session_id and retry["attempt"] == 1
    assert retry["delay"] == 0 and "slow down" in retry["message"]
