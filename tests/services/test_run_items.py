"""``TurnItems``: which items of a run's draft go into its log, and when: a step's at its end,
outputs in call order however the calls finish, what an abort left at the end, and a mapping
fault that costs raw items, never the turn."""

import logging

from opencode.agent.history import INTERRUPTED
from opencode.schemas.events import ItemsCompleted
from opencode.services.run_items import TurnItems, log_items
from tests.codex_seed import notification_validator

MESSAGE, TURN = "msg_reply", "msg_user"


class Log(list):
    """What the run's log received."""

    def items(self) -> list[list[dict]]:
        assert all(isinstance(event, ItemsCompleted) and event.turn_id == TURN for event in self)
        return [event.items for event in self]


def turn_items() -> tuple[TurnItems, Log]:
    log = Log()
    return TurnItems(log.append, message_id=MESSAGE, turn_id=TURN), log


def tool(call_id: str, state: str = "running", output: str | None = None) -> dict:
    return {
        "type": "tool",
        "call_id": call_id,
        "name": "todoread",
        "arguments": {},
        "arguments_json": "{}",
        "state": state,
        "output": output,
    }


STEP = [{"type": "step-start", "step_number": 1}, {"type": "text", "text": "Reading."}]


def assert_valid(batches: list[list[dict]]) -> None:
    validator = notification_validator()
    for item in (item for batch in batches for item in batch):
        validator.validate({"threadId": "ses", "turnId": TURN, "item": item})


def test_outputs_wait_for_the_earlier_calls_of_their_step():
    items, log = turn_items()
    parts = [*STEP, tool("a"), tool("b"), tool("c")]
    items.step_finished(parts)
    assert [i["type"] for i in log.items()[0]] == ["message"] + ["function_call"] * 3
    assert log.items()[0][0]["phase"] == "commentary"  # calls follow: not the final answer

    parts[3] = tool("b", "completed", "B")
    items.tool_finished(parts, "b")
    assert len(log) == 1  # b waits for a
    parts[2] = tool("a", "error", "A failed")
    items.tool_finished(parts, "a")
    parts[4] = tool("c", "completed", "C")
    items.tool_finished(parts, "c")
    outputs = log.items()[1:]
    assert [[o["call_id"] for o in batch] for batch in outputs] == [["a", "b"], ["c"]]
    assert [o["output"] for batch in outputs for o in batch] == [
        {"body": "A failed", "success": False},
        {"body": "B", "success": True},
        {"body": "C", "success": True},
    ]
    items.ending(parts)
    assert len(log) == 3  # nothing was left
    assert_valid(log.items())


def test_a_step_without_calls_is_the_final_answer():
    items, log = turn_items()
    items.step_finished([*STEP, {"type": "step-finish", "step_number": 1}])
    assert log.items() == [
        [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Reading."}],
                "phase": "final_answer",
            }
        ]
    ]


def test_an_abort_during_the_calls_logs_the_missing_outputs_once():
    items, log = turn_items()
    parts = [*STEP, tool("a"), tool("b"), {"type": "step-finish", "step_number": 1}]
    items.step_finished(parts)
    parts[3] = tool("b", "completed", "B")
    items.tool_finished(parts, "b")  # waits for a, which the abort cuts short
    parts[2] = tool("a", "error", INTERRUPTED)  # as the final write settles it
    items.ending(parts)
    items.ending(parts)  # a second end (a finish after a failed one) adds nothing
    assert len(log) == 2
    assert [(o["call_id"], o["output"]) for o in log.items()[1]] == [
        ("a", {"body": "aborted", "success": False}),
        ("b", {"body": "B", "success": True}),
    ]
    assert_valid(log.items())


def test_an_abort_mid_step_logs_the_step_as_commentary():
    items, log = turn_items()
    parts = [*STEP, tool("a"), {"type": "step-finish", "step_number": 1}]
    items.step_finished(parts)
    parts[2] = tool("a", "completed", "A")
    items.tool_finished(parts, "a")
    parts += [
        {"type": "step-start", "step_number": 2},
        {"type": "reasoning", "text": "Next", "signature": None, "redacted": None},
        {"type": "text", "text": "Half"},
    ]
    items.ending(parts)
    last = log.items()[-1]
    assert [i["type"] for i in last] == ["reasoning", "message"]
    assert last[0]["id"] == f"rs_{MESSAGE}_5"  # its index in the message
    assert last[1]["phase"] == "commentary"  # the turn did not end with it: not an answer
    assert_valid(log.items())


def test_an_abort_before_the_first_output_logs_nothing():
    items, log = turn_items()
    items.ending([{"type": "step-start", "step_number": 1}])
    items.ending([])
    assert log == []


def test_a_fault_in_the_mapping_is_logged_and_costs_only_the_items(caplog):
    items, log = turn_items()
    broken = [*STEP, {"type": "tool", "call_id": "x", "state": "running"}]  # no name
    with caplog.at_level(logging.ERROR):
        items.step_finished(broken)
        log_items(log.append, TURN, lambda: 1 / 0)
    assert log == [] and "could not map the items" in caplog.text
