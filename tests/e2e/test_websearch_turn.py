"""``websearch`` in a full turn through the real server, against a loopback SearXNG."""

import httpx
import pytest

from tests.e2e.helpers import new_session, send
from tests.fakes.provider import Reply
from tests.fakes.search import FakeSearxng, SearxReply, searx_result

pytestmark = pytest.mark.timeout(90)


async def test_the_model_searches_and_reads_the_numbered_results(fake, start_server):
    async with FakeSearxng() as searxng:
        searxng.script(
            SearxReply(
                results=[
                    searx_result(
                        "asyncio docs",
                        "https://docs.python.org/3/library/asyncio.html",
                        "asyncio is a library to write <b>concurrent</b> code.",
                    ),
                    searx_result(
                        "Real Python",
                        "https://realpython.com/async-io-python/",
                        "A walkthrough of async IO in Python.",
                    ),
                ]
            )
        )
        server = start_server(SEARXNG_URL=searxng.url)
        fake.script(
            Reply(
                tool_calls=[
                    ("search_1", "websearch", {"query": "python asyncio", "max_results": 2})
                ]
            ),
            Reply(text="asyncio is Python's library for concurrent code."),
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            listing = (await client.get("/tool")).json()
            assert listing["search"] == {"provider": "searxng", "configured_by": "SEARXNG_URL"}
            session_id = await new_session(client)
            frames = await send(client, session_id, content="What is asyncio?")

        (request,) = searxng.requests
        assert request.path == "/search"
        assert request.params["q"] == "python asyncio" and request.params["format"] == "json"

    (result,) = [f.data for f in frames if f.type == "tool_result"]
    assert result["is_error"] is False
    assert result["text"] == (
        'Search results for "python asyncio" (searxng):\n\n'
        "1. asyncio docs\n"
        "   https://docs.python.org/3/library/asyncio.html\n"
        "   asyncio is a library to write concurrent code.\n\n"
        "2. Real Python\n"
        "   https://realpython.com/async-io-python/\n"
        "   A walkthrough of async IO in Python."
    )
    assert frames[-1].type == "done"
    (tool_message,) = fake.requests[-1].tool_messages()
    assert tool_message["content"] == result["text"]


async def test_a_backend_failure_is_a_tool_error_and_the_turn_finishes(fake, start_server):
    async with FakeSearxng() as searxng:
        searxng.script(SearxReply(status=429, headers={"Retry-After": "30"}))
        server = start_server(SEARXNG_URL=searxng.url)
        fake.script(
            Reply(tool_calls=[("search_1", "websearch", {"query": "anything"})]),
            Reply(text="Search is unavailable right now."),
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            session_id = await new_session(client)
            frames = await send(client, session_id, content="Search for anything")

    (result,) = [f.data for f in frames if f.type == "tool_result"]
    assert result["is_error"] is True
    assert "rate limited" in result["text"] and "30" in result["text"]
    assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
