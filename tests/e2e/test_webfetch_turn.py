"""``webfetch`` in a full turn through the real server, against the loopback web site."""

import httpx
import pytest

from tests.e2e.test_turns import new_session, send
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)


def script_fetch(fake, url: str, answer: str) -> None:
    fake.script(
        Reply(tool_calls=[("fetch_1", "webfetch", {"url": url})]),
        Reply(text=answer),
    )


def by_type(frames) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for frame in frames:
        grouped.setdefault(frame.type, []).append(frame.data)
    return grouped


def tool_messages(request_json: dict) -> list[dict]:
    return [m for m in request_json["messages"] if m["role"] == "tool"]


async def test_the_model_reads_a_page_as_markdown(fake, start_server, site):
    server = start_server(OPENCODE_WEBFETCH_ALLOW_PRIVATE="true")
    script_fetch(fake, site.url("/page"), "The page explains how to get started.")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = by_type(await send(client, session_id, content="Read the docs page"))

    (result,) = frames["tool_result"]
    assert result["tool_call_id"] == "fetch_1" and result["is_error"] is False
    assert result["text"].startswith(f"URL: {site.url('/page')}\nTitle: Fake Docs")
    assert "# Getting started" in result["text"] and "NOISE" not in result["text"]
    assert frames["done"][0]["stop_reason"] == "stop"
    assert site.paths == ["/page"]

    first, second = fake.requests[0].json, fake.requests[-1].json
    advertised = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert set(advertised["webfetch"]["parameters"]["properties"]) == {"url", "format", "timeout"}
    (tool_message,) = tool_messages(second)
    assert tool_message["tool_call_id"] == "fetch_1"
    assert "# Getting started" in str(tool_message["content"])


async def test_a_loopback_fetch_is_refused_and_the_turn_still_finishes(fake, server, site):
    script_fetch(fake, site.url("/page"), "I could not read that page.")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = by_type(await send(client, session_id, content="Read the docs page"))

    (result,) = frames["tool_result"]
    assert result["is_error"] is True
    assert result["text"].startswith(
        f"Refused to fetch {site.url('/page')}: 127.0.0.1 is a loopback address."
    )
    assert "".join(d["text"] for d in frames["text"]) == "I could not read that page."
    assert frames["done"][0]["stop_reason"] == "stop"
    assert site.requests == []  # the guard refused before connecting

    (tool_message,) = tool_messages(fake.requests[-1].json)
    assert "Refused to fetch" in str(tool_message["content"])
