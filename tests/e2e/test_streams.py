"""The message stream's promises through the real server: ids a client can resume from (and a
``server.resync`` when it cannot), keep-alives short enough for httpx's default timeout, retries
in the stream, the turn deadline, and 409s that always name the running reply."""

import asyncio
import time

import httpx
import pytest

from tests.e2e.helpers import listen_bus, new_session, open_turn, restarted, send, wait_until
from tests.fakes.provider import Reply
from tests.sse import collect

pytestmark = pytest.mark.timeout(90)


async def test_stream_ids_grow_across_turns_and_resume_exactly(fake, server):
    fake.script(
        Reply(text="first turn"),
        Reply(text=["one ", "two ", "three ", "four"], hang_after=3),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        first = await send(client, session_id, content="a")
        async with open_turn(client, session_id, content="b") as reader:
            frames = await reader.until(lambda _: reader.text() == "one two three ")
            ids = [int(f.id) for f in frames]
            assert ids[0] > int(first[-1].id) and ids == sorted(set(ids))

            # resuming from an id of this turn replays exactly what followed it
            async with client.stream(
                "GET", f"/session/{session_id}/stream", headers={"Last-Event-ID": str(ids[2])}
            ) as resumed:
                await client.post(f"/session/{session_id}/abort")
                replay = await collect(resumed)
            assert replay[0].type != "server.resync"
            assert [f.id for f in replay[: len(frames) - 3]] == [f.id for f in frames[3:]]
            assert replay[-1].type == "done"

    fake.script(Reply(text=["x ", "y"], hang_after=1))
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        open_turn(client, session_id, content="c") as reader,
    ):
        await reader.until_type("text")
        # an id from an earlier turn must not be trusted: resync, then the whole turn
        stale = first[-1].id
        async with client.stream(
            "GET", f"/session/{session_id}/stream", headers={"Last-Event-ID": stale}
        ) as resumed:
            await client.post(f"/session/{session_id}/abort")
            replay = await collect(resumed)
    assert replay[0].type == "server.resync" and replay[0].id is None
    assert "before this turn" in replay[0].data["reason"]
    assert replay[1].type == "message_start" and replay[-1].type == "done"


async def test_event_ids_survive_a_restart_and_stale_ones_get_a_resync(fake, start_server):
    server = start_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with listen_bus(client) as frames:
            await new_session(client)
            await wait_until(lambda: any(f.type == "session.created" for f in frames))
        last_id = int(frames[-1].id)
    await asyncio.to_thread(server.stop)

    async with (
        restarted(server) as again,
        httpx.AsyncClient(base_url=again.url, timeout=30) as client,
    ):
        headers = {"Last-Event-ID": str(last_id)}
        async with listen_bus(client, headers) as resumed:
            await new_session(client)
            await wait_until(lambda: any(f.type == "session.created" for f in resumed))
    types = [f.type for f in resumed]
    assert types[:2] == ["server.connected", "server.resync"]
    assert "restarted" in resumed[1].data["properties"]["reason"]
    created = next(f for f in resumed if f.type == "session.created")
    assert int(created.id) > last_id  # ids only grow: nothing new is hidden behind the old id


async def test_the_readme_client_survives_a_retry_pause_with_httpx_defaults(fake, server):
    """Keep-alives come every few seconds, under httpx's default 5 s read timeout, and the
    retry is announced in the stream itself."""
    fake.script(Reply(status=429, retry_after="6", error_message="busy"), Reply(text="made it"))
    async with httpx.AsyncClient(base_url=server.url) as client:  # default timeouts
        session_id = await new_session(client)
        started = time.monotonic()
        frames = await send(client, session_id, content="hi")
    assert time.monotonic() - started > 5.5
    retry = next(f.data for f in frames if f.type == "retry")
    assert retry["attempt"] == 1 and retry["delay"] == 6 and "busy" in retry["message"]
    assert frames[-1].type == "done"
    assert "".join(f.data["text"] for f in frames if f.type == "text") == "made it"


async def test_a_turn_past_its_deadline_ends_with_an_error_keeping_its_text(fake, start_server):
    server = start_server(OPENCODE_TURN_TIMEOUT="1.5")
    fake.script(Reply(text=["so far ", "never"], hang_after=1), Reply(text="next"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="x")
        assert frames[-1].type == "error" and "OPENCODE_TURN_TIMEOUT" in frames[-1].data["error"]
        page = (await client.get(f"/session/{session_id}/message")).json()
        reply = page["messages"][1]
        assert reply["status"] == "error" and reply["content"] == "so far "
        assert (await send(client, session_id, content="y"))[-1].type == "done"


async def test_a_burst_of_sends_gets_409s_that_name_the_running_reply(fake, server):
    fake.script(Reply(text=["slow ", "reply"], chunk_delay=0.3))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)

        async def post() -> tuple[int, object]:
            request = client.build_request(
                "POST", f"/session/{session_id}/message", json={"content": "x"}
            )
            response = await client.send(request, stream=True)
            try:
                if response.status_code == 200:
                    return 200, await collect(response)
                return response.status_code, (await response.aread(), response)
            finally:
                await response.aclose()

        results = await asyncio.gather(*(post() for _ in range(9)))
    streams = [frames for status, frames in results if status == 200]
    conflicts = [answer for status, answer in results if status == 409]
    assert len(streams) == 1 and len(conflicts) == 8
    message_id = streams[0][0].data["message_id"]
    for _, response in conflicts:
        assert response.json()["message_id"] == message_id
