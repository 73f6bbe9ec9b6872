"""Turns in the Codex format through the real server (``?format=codex`` or NDJSON)."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.codex_notes import Note, notes_of
from tests.sse import FrameReader, SSEParser

NDJSON = {"Accept": "application/x-ndjson"}


@asynccontextmanager
async def open_codex(
    client: httpx.AsyncClient, session_id: str, *, params: dict | None = None, **body
) -> AsyncIterator[FrameReader]:
    """POST a message asking for Codex notifications over SSE; a reader of its frames."""
    query = {"format": "codex", **(params or {})}
    async with client.stream(
        "POST", f"/session/{session_id}/message", params=query, json=body
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield FrameReader(response)


async def codex_send(client: httpx.AsyncClient, session_id: str, **body) -> list[Note]:
    """POST a message and read its whole Codex stream (SSE)."""
    async with open_codex(client, session_id, **body) as reader:
        return notes_of(await reader.rest())


async def codex_follow(
    client: httpx.AsyncClient, session_id: str, headers: dict | None = None
) -> AsyncIterator[tuple[str | None, Note]]:
    """``GET /session/{id}/stream?format=codex``: (id, notification) until the stream ends."""
    async with client.stream(
        "GET", f"/session/{session_id}/stream", params={"format": "codex"}, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        parser = SSEParser()
        async for line in response.aiter_lines():
            frame = parser.feed(line)
            if frame is not None:
                yield frame.id, notes_of([frame])[0]


async def ndjson_lines(response: httpx.Response) -> tuple[list[Note], int]:
    """The notifications of an NDJSON stream, and how many empty (keep-alive) lines it had."""
    notes, empty = [], 0
    async for line in response.aiter_lines():
        if not line:
            empty += 1
            continue
        notes.append(json.loads(line))
    return notes, empty


async def exported(client: httpx.AsyncClient, session_id: str, turn: str) -> list[dict]:
    """``GET /session/{id}/items``: the items of one turn."""
    response = await client.get(f"/session/{session_id}/items")
    assert response.status_code == 200, response.text
    return [entry for entry in response.json()["items"] if entry["turnId"] == turn]


def turn_of(notes: list[Note]) -> str:
    assert notes[0]["method"] == "turn/started", notes[0]
    return notes[0]["params"]["turn"]["id"]


def assert_one_turn(notes: list[Note], session_id: str) -> None:
    """Every notification names the session and the turn; ``turn/completed`` comes last."""
    turn = turn_of(notes)
    for note in notes:
        params = note["params"]
        assert params["threadId"] == session_id, note
        assert params.get("turnId", params.get("turn", {}).get("id")) == turn, note
    assert [n["method"] for n in notes].count("turn/completed") == 1
    assert notes[-1]["method"] == "turn/completed"
