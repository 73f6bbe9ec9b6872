"""The Codex stream when turns end early, and on the wire: abort -> ``interrupted`` with raw
items for what was generated, provider failure -> ``error`` then ``failed``, NDJSON through the
Accept header (with keep-alive lines), re-attach with ``Last-Event-ID``, opt-out, and the
errors that stay JSON before any stream starts."""

import asyncio

import httpx
import pytest

from tests.codex_notes import RAW, assert_raw_items_valid, completed, methods, notes_of, raw_items
from tests.e2e.codex import (
    NDJSON,
    assert_one_turn,
    codex_follow,
    codex_send,
    exported,
    ndjson_lines,
    open_codex,
    turn_of,
)
from tests.e2e.helpers import new_session, send, wait_until
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)

QUESTION = {
    "question": "Which color?",
    "header": "Color",
    "options": [{"label": "red", "description": ""}, {"label": "blue", "description": ""}],
    "multiple": False,
}


async def test_abort_interrupts_the_turn_with_raw_items_for_what_was_generated(fake, server):
    fake.script(Reply(text=["one ", "two ", "three"], hang_after=2))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_codex(client, session_id, content="count") as reader:
            await reader.until(
                lambda frames: methods(notes_of(frames)).count("item/agentMessage/delta") == 2
            )
            await client.post(f"/session/{session_id}/abort")
            notes = notes_of(await reader.rest())
        assert raw_items(notes) == [
            i["item"] for i in await exported(client, session_id, turn_of(notes))
        ]

    assert_one_turn(notes, session_id)
    assert_raw_items_valid(notes)
    assert methods(notes)[-3:] == ["item/completed", RAW, "turn/completed"]
    (message,) = completed(notes, "agentMessage")
    assert message["text"] == "one two " and message["phase"] == "commentary"
    assert raw_items(notes)[-1] == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "one two "}],
        "phase": "commentary",
    }
    assert notes[-1]["params"]["turn"]["status"] == "interrupted"


async def test_a_call_cut_short_by_an_abort_gets_the_aborted_output(fake, server):
    fake.script(
        Reply(text="Asking.", tool_calls=[("call_q", "question", {"questions": [QUESTION]})])
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_codex(client, session_id, content="x") as reader:
            await reader.until(
                lambda frames: "thread/tokenUsage/updated" in methods(notes_of(frames))
            )
            await wait_until(lambda: pending_question(client))
            await client.post(f"/session/{session_id}/abort")
            notes = notes_of(await reader.rest())
        assert raw_items(notes) == [
            i["item"] for i in await exported(client, session_id, turn_of(notes))
        ]

    assert_raw_items_valid(notes)
    assert methods(notes)[-3:] == ["item/completed", RAW, "turn/completed"]
    (call,) = completed(notes, "dynamicToolCall")
    assert call["id"] == "call_q" and call["status"] == "failed" and call["success"] is False
    assert raw_items(notes)[-1] == {
        "type": "function_call_output",
        "call_id": "call_q",
        "output": {"body": "aborted", "success": False},
    }
    assert notes[-1]["params"]["turn"]["status"] == "interrupted"


async def pending_question(client: httpx.AsyncClient) -> bool:
    return bool((await client.get("/question")).json())


async def test_provider_failure_sends_error_then_a_failed_turn(fake, start_server):
    server = start_server(OPENCODE_MAX_RETRIES="1")
    fake.script(
        Reply(status=503),
        Reply(text=["half ", "of it ", "and more"], fail_after=2),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        notes = await codex_send(client, session_id, content="go")

    assert_one_turn(notes, session_id)
    assert_raw_items_valid(notes)
    errors = [n["params"] for n in notes if n["method"] == "error"]
    assert [e["willRetry"] for e in errors] == [True, False]  # the retry, then the failure
    assert methods(notes)[-4:] == ["item/completed", RAW, "error", "turn/completed"]
    assert raw_items(notes)[-1]["content"] == [{"type": "output_text", "text": "half of it "}]
    assert raw_items(notes)[-1]["phase"] == "commentary"
    failed = notes[-1]["params"]["turn"]
    assert failed["status"] == "failed" and failed["error"] == errors[-1]["error"]
    assert failed["error"]["message"] and set(failed["error"]) == {
        "message",
        "codexErrorInfo",
        "additionalDetails",
    }


async def test_ndjson_through_the_accept_header_with_keepalive_lines(fake, start_server):
    server = start_server(OPENCODE_KEEPALIVE_SECONDS="0.2")
    fake.script(
        Reply(text=["slow ", "reply"], chunk_delay=0.5, tool_calls=[("c1", "todoread", {})]),
        Reply(text="Done."),
        Reply(text=["slow ", "reply"], tool_calls=[("c1", "todoread", {})]),
        Reply(text="Done."),
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with client.stream(
            "POST", f"/session/{session_id}/message", headers=NDJSON, json={"content": "a"}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/x-ndjson")
            notes, keepalives = await ndjson_lines(response)
        again = await codex_send(client, session_id, content="a")

    assert keepalives >= 1  # empty lines while the provider was slow
    assert all(set(note) == {"method", "params"} for note in notes)  # no "jsonrpc" member
    assert_one_turn(notes, session_id)
    assert_raw_items_valid(notes)
    assert methods(notes) == methods(again)  # the same notifications as over SSE


async def test_reattaching_with_last_event_id_loses_and_repeats_nothing(fake, server):
    fake.script(
        Reply(text="first turn"), Reply(text=["one ", "two ", "three ", "four"], hang_after=3)
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        stale = (await send(client, session_id, content="a"))[-1].id  # an earlier turn's id
        async with open_codex(client, session_id, content="b") as reader:
            frames = await reader.until(
                lambda frames: methods(notes_of(frames)).count("item/agentMessage/delta") == 3
            )
            ids = [int(frame.id) for frame in frames]
            assert ids == sorted(ids) and len(set(ids)) < len(ids)  # one id per log event
            cut = frames[3].id  # after the user message's raw item and its ThreadItem
            resumed, whole = [], []

            async def reattach(last_event_id: str, into: list) -> None:
                headers = {"Last-Event-ID": last_event_id}
                async for event_id, note in codex_follow(client, session_id, headers):
                    into.append((event_id, note))

            tasks = [
                asyncio.create_task(reattach(cut, resumed)),
                asyncio.create_task(reattach(stale, whole)),
            ]
            await wait_until(lambda: len(resumed) >= 4 and len(whole) >= 7)
            await client.post(f"/session/{session_id}/abort")
            await asyncio.gather(*tasks)
            everything = await reader.rest()  # the reader's frames so far and the rest
            first = [(f.id, note) for f, note in zip(everything, notes_of(everything), strict=True)]

    assert first[-1][1]["method"] == "turn/completed"
    assert resumed == [(i, n) for i, n in first if int(i) > int(cut)]  # exactly what followed
    assert resumed[0][1]["method"] == "item/started"  # the agentMessage, with its state
    assert whole == first  # an id from another turn: the whole turn, from turn/started
    assert_raw_items_valid([note for _, note in first])


async def test_opt_out_drops_exactly_the_methods_named(fake, server):
    fake.script(Reply(reasoning="Hm.", text="Hi."))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        params = {"optOut": [RAW, "item/reasoning/textDelta", "rawResponseItem"]}
        notes = await codex_send(client, session_id, content="x", params=params)
    assert RAW not in methods(notes) and "item/reasoning/textDelta" not in methods(notes)
    assert "item/agentMessage/delta" in methods(notes) and methods(notes)[-1] == "turn/completed"


async def test_errors_stay_json_before_any_stream_and_the_default_is_unchanged(fake, start_server):
    server = start_server(OPENCODE_AUTH="none", OPENCODE_DAILY_TOKEN_LIMIT="10")
    fake.script(Reply(text="ok", tool_calls=[("c1", "todoread", {})]))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        missing = await client.post(
            "/session/ses_nope/message", headers=NDJSON, json={"content": "x"}
        )
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        session_id = await new_session(client)
        url = f"/session/{session_id}"
        nothing = await client.get(f"{url}/stream", params={"format": "codex"})
        assert nothing.status_code == 404 and nothing.json()["error"] == "not_found"
        bad = await client.post(f"{url}/message", params={"format": "xml"}, json={"content": "x"})
        assert bad.status_code == 422
        seed = await client.post(f"{url}/message", params={"format": "seed"}, json={"content": "x"})
        assert seed.status_code == 422  # the default format is asked for by no format at all

        frames = await send(client, session_id, content="spend the quota")  # the seed format
        assert {f.type for f in frames} == {
            "message_start",
            "step_start",
            "tool_call",
            "step_finish",
            "tool_result",
            "text",
            "done",
        }
        over = await client.post(f"{url}/message", headers=NDJSON, json={"content": "more"})
        assert over.status_code == 429 and over.json()["error"] == "quota_exceeded"


async def test_busy_is_a_json_409_in_the_codex_format(fake, server):
    fake.script(Reply(text=["x"], hang_after=0))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        async with open_codex(client, session_id, content="a") as reader:
            await reader.until(lambda frames: len(frames) >= 4)
            busy = await client.post(
                f"/session/{session_id}/message", headers=NDJSON, json={"content": "b"}
            )
            assert busy.status_code == 409 and busy.json()["error"] == "conflict"
            await client.post(f"/session/{session_id}/abort")
            notes = notes_of(await reader.rest())
    assert notes[-1]["params"]["turn"]["status"] == "interrupted"
