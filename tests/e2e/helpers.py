"""What the end-to-end tests do over and over against the real server."""

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx

from tests.e2e.server import ServerProcess
from tests.sse import Frame, FrameReader, SSEParser


async def new_session(client: httpx.AsyncClient, **body) -> str:
    response = await client.post("/session", json=body or None)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@asynccontextmanager
async def open_turn(
    client: httpx.AsyncClient, session_id: str, **body
) -> AsyncIterator[FrameReader]:
    """POST a message; yields a reader of its stream, to read in instalments while the turn
    runs. Leaving the block disconnects (the turn itself goes on on the server)."""
    async with client.stream("POST", f"/session/{session_id}/message", json=body) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield FrameReader(response)


async def send(client: httpx.AsyncClient, session_id: str, **body) -> list[Frame]:
    """POST a message and read its whole stream."""
    async with open_turn(client, session_id, **body) as reader:
        return await reader.rest()


def by_type(frames: list[Frame]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for frame in frames:
        grouped.setdefault(frame.type, []).append(frame.data)
    return grouped


async def read_bus(client, into: list, ready: asyncio.Event, headers=None, params=None) -> None:
    async with client.stream("GET", "/event", headers=headers or {}, params=params) as response:
        parser = SSEParser()
        async for line in response.aiter_lines():
            frame = parser.feed(line)
            if frame is not None:
                into.append(frame)
                ready.set()


@asynccontextmanager
async def listen_bus(
    client: httpx.AsyncClient, headers=None, params=None
) -> AsyncIterator[list[Frame]]:
    """``GET /event`` read in the background; yields the list its frames are appended to,
    once the connection is up."""
    frames: list[Frame] = []
    ready = asyncio.Event()
    reader = asyncio.create_task(read_bus(client, frames, ready, headers, params))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield frames
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0
) -> None:
    """Poll ``predicate`` (plain or async) every 50 ms until it holds; fail after ``timeout``."""
    for _ in range(int(timeout / 0.05)):
        holds = predicate()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


@asynccontextmanager
async def restarted(server: ServerProcess) -> AsyncIterator[ServerProcess]:
    """A new server process on the same database and settings as ``server`` (which has
    stopped or been killed), stopped when the block ends."""
    again = ServerProcess(server.workdir, server.env)
    await asyncio.to_thread(again.start)
    try:
        yield again
    finally:
        await asyncio.to_thread(again.stop)
