"""``webfetch`` in a full turn through the real server, against the loopback web site."""

import httpx
import pytest

from tests.e2e.helpers import by_type, new_session, send
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)


def script_fetch(fake, url: str, answer: str) -> None:
    fake.script(
        Reply(tool_calls=[("fetch_1", "webfetch", {"url": url})]),
        Reply(text=answer),
    )


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

    advertised = {
        tool["function"]["name"]: tool["function"] for tool in fake.requests[0].json["tools"]
    }
    assert set(advertised["webfetch"]["parameters"]["properties"]) == {"url", "format", "timeout"}
    (tool_message,) = fake.requests[-1].tool_messages()
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

    (tool_message,) = fake.requests[-1].tool_messages()
    assert "Refused to fetch" in str(tool_message["content"])


async def test_private_targets_are_refused_without_a_connection(fake, server, site):
    """OPENCODE_WEBFETCH_ALLOW_PRIVATE is unset on the shared server. The guard refuses before
    any socket opens; both spellings point at the loopback site, which proves it (and keeps a
    broken guard's traffic on loopback; link-local and the rest are refused in tests/tools)."""
    decimal = f"http://2130706433:{site.port}/page"
    mapped = f"http://[::ffff:127.0.0.1]:{site.port}/page"
    fake.script(
        Reply(
            tool_calls=[
                ("fetch_decimal", "webfetch", {"url": decimal, "timeout": 2}),
                ("fetch_mapped", "webfetch", {"url": mapped, "timeout": 2}),
            ]
        ),
        Reply(text="Both addresses are off limits."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = by_type(await send(client, session_id, content="Read these two"))

    results = {result["tool_call_id"]: result for result in frames["tool_result"]}
    assert all(result["is_error"] for result in results.values())
    assert results["fetch_decimal"]["text"].startswith(
        f"Refused to fetch {decimal}: 2130706433 (127.0.0.1) is a loopback address"
    )
    assert results["fetch_mapped"]["text"].startswith("Refused to fetch http://[::ffff:127.0.0.1]")
    assert "an IPv6 form of 127.0.0.1, a loopback address" in results["fetch_mapped"]["text"]
    assert frames["done"][0]["stop_reason"] == "stop"
    assert site.requests == []
    sent = {m["tool_call_id"]: m["content"] for m in fake.requests[-1].tool_messages()}
    assert set(sent) == set(results)  # the model reads each refusal
    assert all(results[call_id]["text"] in content for call_id, content in sent.items())


async def test_max_chars_from_the_environment_cuts_the_result_with_a_note(fake, start_server, site):
    server = start_server(
        OPENCODE_WEBFETCH_ALLOW_PRIVATE="true", OPENCODE_WEBFETCH_MAX_CHARS="1000"
    )
    script_fetch(fake, site.url("/long"), "It is a long list of lines.")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = by_type(await send(client, session_id, content="Read the long document"))

    (result,) = frames["tool_result"]
    assert result["is_error"] is False
    kept, note = result["text"].split("\n\n[Output truncated: ")
    assert len(kept) == 1000 and "line 000000 of a long document" in kept
    assert note.startswith("first 1,000 of ") and note.endswith(" characters shown.]")
    assert frames["done"][0]["stop_reason"] == "stop"
    (tool_message,) = fake.requests[-1].tool_messages()
    assert tool_message["content"] == result["text"]
