"""The Codex encoder on a run's log: notifications per event, re-attach after any id, opt-out,
items that never streamed or never finished, how turns end, and the two framings."""

import json

import pytest

from opencode.core.ids import EventIds
from opencode.events.codex_wire import codex_notifications, ndjson_lines, sse_frames, to_json
from opencode.schemas.events import (
    CompactionEvent,
    ErrorEvent,
    ItemsCompleted,
    ReasoningEvent,
    RetryEvent,
    StepStart,
)
from opencode.services.run import Run
from tests.codex_notes import RAW, assert_raw_items_valid, methods
from tests.events.codex_log import (
    CALL,
    OUTPUT,
    SESSION,
    START,
    THOUGHT,
    TURN,
    TWO_STEPS,
    done,
    encode,
    items,
    log,
    said,
)
from tests.sse import SSEParser


async def test_after_any_id_the_stream_goes_on_exactly_where_it_was():
    full = [group async for group in codex_notifications(log(TWO_STEPS))]
    for after in range(len(TWO_STEPS) + 1):
        resumed = [group async for group in codex_notifications(log(TWO_STEPS), after=after)]
        assert resumed == [(event_id, notes) for event_id, notes in full if event_id > after]


def test_a_turn_in_codex_order_with_every_raw_item_valid():
    notes = encode(TWO_STEPS)
    assert_raw_items_valid(notes)
    assert methods(notes) == [
        "turn/started",
        *(RAW, "item/started", "item/completed"),  # the user message
        *("item/started", "item/reasoning/textDelta", "item/reasoning/textDelta"),
        *("item/started", "item/agentMessage/delta", "item/agentMessage/delta"),
        *("item/completed", RAW),  # reasoning
        *("item/completed", RAW),  # agentMessage
        *(RAW, "item/started"),  # the call
        "thread/tokenUsage/updated",
        *("item/completed", RAW),  # its result and output
        *("item/started", "item/agentMessage/delta", "item/completed", RAW),
        "thread/tokenUsage/updated",
        "turn/completed",
    ]
    thought, text = [n["params"]["item"] for n in notes if n["method"] == "item/completed"][1:3]
    assert thought["content"] == ["Hmm."] and text == {
        "type": "agentMessage",
        "id": text["id"],
        "text": "Looking.",
        "phase": "commentary",
    }
    total = notes[-2]["params"]["tokenUsage"]["total"]
    assert total == {
        "totalTokens": 10,
        "inputTokens": 6,
        "cachedInputTokens": 0,
        "outputTokens": 4,
        "reasoningOutputTokens": 0,
    }


def test_opt_out_drops_only_exact_methods():
    notes = encode(TWO_STEPS, opt_out=frozenset({RAW, "item/agentMessage"}))
    assert RAW not in methods(notes) and "item/agentMessage/delta" in methods(notes)
    assert methods(notes) == [m for m in methods(encode(TWO_STEPS)) if m != RAW]


def test_an_item_that_never_streamed_gets_its_whole_lifecycle():
    redacted = {**THOUGHT, "content": None, "encrypted_content": "blob"}
    notes = encode([START, StepStart(step_number=1, max_steps=1), items(redacted)])
    assert methods(notes) == ["turn/started", "item/started", "item/completed", RAW]
    assert notes[2]["params"]["item"]["content"] == []


def test_a_streamed_item_no_raw_item_finalises_is_completed_with_its_text():
    notes = encode([START, ReasoningEvent(text="lost"), items(said("x", "final_answer"))])
    completed = [n["params"]["item"] for n in notes if n["method"] == "item/completed"]
    assert [(i["type"], i.get("content")) for i in completed] == [
        ("agentMessage", None),
        ("reasoning", ["lost"]),
    ]


def test_a_call_without_result_completes_failed_at_its_aborted_output():
    aborted = {**OUTPUT, "output": {"body": "aborted", "success": False}}
    notes = encode([START, items(CALL), items(aborted), done("aborted")])
    assert methods(notes)[-4:] == ["item/started", "item/completed", RAW, "turn/completed"]
    call = notes[-3]["params"]["item"]
    assert (call["status"], call["success"]) == ("failed", False)
    assert call["contentItems"] == [{"type": "inputText", "text": "aborted"}]
    assert notes[-1]["params"]["turn"]["status"] == "interrupted"


@pytest.mark.parametrize(
    ("stop_reason", "status"),
    [
        ("stop", "completed"),
        ("max_steps", "completed"),
        ("quota", "completed"),
        ("aborted", "interrupted"),
        ("shutdown", "interrupted"),
    ],
)
def test_how_a_done_turn_ends(stop_reason, status):
    (*_, end) = encode([START, done(stop_reason)])
    assert end == {
        "method": "turn/completed",
        "params": {
            "threadId": SESSION,
            "turn": {"id": TURN, "items": [], "status": status, "error": None},
        },
    }


def test_a_retry_is_an_error_that_will_retry_and_a_failure_fails_the_turn():
    notes = encode(
        [START, RetryEvent(attempt=1, delay=0.1, message="503"), ErrorEvent(error="gone")]
    )
    assert methods(notes) == ["turn/started", "error", "error", "turn/completed"]
    retry, failure, end = (n["params"] for n in notes[1:])
    assert retry["willRetry"] is True and retry["error"]["message"] == "503"
    assert failure == {
        "error": {"message": "gone", "codexErrorInfo": None, "additionalDetails": None},
        "willRetry": False,
        "threadId": SESSION,
        "turnId": TURN,
    }
    assert end["turn"]["status"] == "failed" and end["turn"]["error"] == failure["error"]


@pytest.mark.parametrize("ending", ["completed", "failed"])
def test_a_compaction_is_a_context_compaction_item(ending):
    compaction = {"type": "compaction", "encrypted_content": "summary"}
    notes = encode(
        [
            START,
            CompactionEvent(status="started", trigger="tokens"),
            CompactionEvent(status=ending, trigger="tokens"),
            *([items(compaction)] if ending == "completed" else []),
        ]
    )
    started, finished = (n["params"]["item"] for n in notes[1:3])
    assert started == finished == {"type": "contextCompaction", "id": started["id"]}
    assert methods(notes)[1:3] == ["item/started", "item/completed"]
    assert_raw_items_valid(notes)


async def test_sse_frames_carry_the_event_id_and_method_and_ndjson_one_per_line():
    groups = [group async for group in codex_notifications(log(TWO_STEPS))]

    async def replay():
        for group in groups:
            yield group

    parser, frames = SSEParser(), []
    for chunk in [chunk async for chunk in sse_frames(replay())]:
        for line in chunk.decode().split("\r\n"):
            frame = parser.feed(line)
            if frame is not None:
                frames.append(frame)
    expected = [(str(event_id), note) for event_id, notes in groups for note in notes]
    assert [(f.id, f.data) for f in frames] == expected
    assert all(f.event == f.data["method"] for f in frames)

    lines = b"".join([chunk async for chunk in ndjson_lines(replay())]).decode()
    assert lines.endswith("\n") and [json.loads(line) for line in lines.splitlines()] == [
        note for _, note in expected
    ]


def test_a_lone_surrogate_becomes_a_replacement_character():
    text = to_json({"method": "item/agentMessage/delta", "params": {"delta": "a\ud83d"}})
    assert json.loads(text)["params"]["delta"] == "a\ufffd"
    text.encode()  # no UnicodeEncodeError


async def test_the_default_stream_skips_internal_events():
    run = Run("ses_1", "msg_1", model=None, ids=EventIds())  # type: ignore[arg-type]
    for event in TWO_STEPS:
        run.emit(event)
    run.close()
    stream = b"".join([batch async for batch in run.frames()]).decode()
    frames = [block for block in stream.split("\r\n\r\n") if block]
    names = [
        line.removeprefix("event: ")
        for f in frames
        for line in f.split("\r\n")
        if line.startswith("event: ")
    ]
    assert "items_completed" not in names
    assert len(frames) == len([e for e in TWO_STEPS if not isinstance(e, ItemsCompleted)])
