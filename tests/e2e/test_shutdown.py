"""Every stream ends with exactly one final event: on SIGTERM with many turns and subscribers,
and under repeated aborts."""

import asyncio
import signal
import time

import httpx
import pytest

from tests.e2e.helpers import listen_bus, new_session, open_turn, restarted, send, wait_until
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(180)

FINAL = ("done", "error")
TURNS = 30
SUBSCRIBERS = 5
GRACE = 2.0


def slow_reply(index: int) -> Reply:
    """A reply that cannot finish within the grace period."""
    return Reply(text=[f"t{index}-{n} " for n in range(200)], chunk_delay=0.1)


async def read_turn(client: httpx.AsyncClient, session_id: str, started: asyncio.Event, out: list):
    async with open_turn(client, session_id, content="go") as reader:
        await reader.until_type("text")
        started.set()
        await reader.rest()
        out.extend(reader.frames)


async def test_sigterm_lets_every_stream_end_with_its_final_event(fake, start_server):
    server = start_server(OPENCODE_SHUTDOWN_GRACE=str(GRACE))
    fake.script(*(slow_reply(index) for index in range(TURNS)), Reply(text="quick"))
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        sessions = [await new_session(client) for _ in range(TURNS)]
        spare = await new_session(client)
        turns = [[] for _ in range(TURNS)]
        started = [asyncio.Event() for _ in range(TURNS)]
        async with (
            listen_bus(client) as bus0,
            listen_bus(client) as bus1,
            listen_bus(client) as bus2,
            listen_bus(client) as bus3,
            listen_bus(client) as bus4,
        ):
            buses = [bus0, bus1, bus2, bus3, bus4]
            readers = [
                asyncio.create_task(read_turn(client, sessions[i], started[i], turns[i]))
                for i in range(TURNS)
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 30)

            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # Draining: the server still answers, but takes no new turn.
            refused = await client.post(f"/session/{spare}/message", json={"content": "x"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "unavailable"
            assert int(refused.headers["retry-after"]) > 0
            health = await client.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "shutting_down"
            assert int(health.headers["retry-after"]) > 0

            await asyncio.wait_for(asyncio.gather(*readers), GRACE + 10)
            exit_code = await asyncio.to_thread(server.proc.wait, 15)
            exited_after = time.monotonic() - signalled
            await wait_until(lambda: all(b and b[-1].type == "server.shutdown" for b in buses))

    # uvicorn re-raises the signal it handled once it is done, so a clean exit reads -SIGTERM
    assert exit_code in (0, -signal.SIGTERM), server.log()
    assert "Traceback" not in server.log()
    assert exited_after < GRACE + 2, f"exited {exited_after:.2f} s after SIGTERM"
    streamed = {}
    for session_id, frames in zip(sessions, turns, strict=True):
        finals = [f for f in frames if f.type in FINAL]
        assert len(finals) == 1 and frames[-1] is finals[0], [f.type for f in frames[-3:]]
        assert finals[0].data["stop_reason"] == "shutdown"
        streamed[session_id] = "".join(f.data["text"] for f in frames if f.type == "text")
    for frames in buses:
        assert [f.type for f in frames].count("server.shutdown") == 1

    async with (
        restarted(server) as again,
        httpx.AsyncClient(base_url=again.url, timeout=30) as client,
    ):
        for session_id, text in streamed.items():
            page = (await client.get(f"/session/{session_id}/message")).json()
            reply = page["messages"][1]
            assert reply["status"] == "aborted", reply
            assert reply["content"] == text and text
        # and the session goes on
        frames = await send(client, sessions[0], content="after")
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"


async def test_a_turn_that_finishes_within_the_grace_period_completes(fake, start_server):
    server = start_server(OPENCODE_SHUTDOWN_GRACE="5")
    fake.script(Reply(text=[f"w{n} " for n in range(10)], chunk_delay=0.1))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="x") as reader:
            await reader.until_type("text")
            server.proc.send_signal(signal.SIGTERM)
            frames = await reader.rest()
    assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
    assert await asyncio.to_thread(server.proc.wait, 10) in (0, -signal.SIGTERM)
    async with (
        restarted(server) as again,
        httpx.AsyncClient(base_url=again.url, timeout=30) as client,
    ):
        page = (await client.get(f"/session/{session_id}/message")).json()
    assert page["messages"][1]["status"] == "completed"


@pytest.mark.parametrize("aborts", [2, 5])
async def test_simultaneous_aborts_end_every_stream_exactly_once(fake, server, aborts):
    rounds = 100
    fake.script(*(Reply(text=["a ", "b ", "never"], hang_after=2) for _ in range(rounds)))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(rounds):
            # a fresh session each round: 100 turns in one would start an automatic compaction
            session_id = await new_session(client)
            async with open_turn(client, session_id, content="x") as reader:
                await reader.until(lambda _: reader.text() == "a b ")
                answers = await asyncio.gather(
                    *(client.post(f"/session/{session_id}/abort") for _ in range(aborts))
                )
                frames = await reader.rest()
            message_id = frames[0].data["message_id"]
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            # an abort that lands after the turn ended says so; every other one names the turn
            bodies = [a.json() for a in answers]
            stopped = {"session_id": session_id, "aborted": True, "message_id": message_id}
            late = {"session_id": session_id, "aborted": False, "message_id": None}
            assert stopped in bodies and all(b in (stopped, late) for b in bodies), bodies
            finals = [f for f in frames if f.type in FINAL]
            assert len(finals) == 1 and frames[-1] is finals[0]
            assert finals[0].data["stop_reason"] == "aborted"
            # released only once the reply is stored
            assert (await client.get(f"/session/{session_id}")).json()["status"] == "idle"
            page = (await client.get(f"/session/{session_id}/message")).json()
            reply = page["messages"][-1]
            assert (reply["id"], reply["status"], reply["content"]) == (
                message_id,
                "aborted",
                "a b ",
            )
