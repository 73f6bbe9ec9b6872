"""A run's log of a two-step tool turn, as the Codex encoder's tests feed it."""

from opencode.events.codex_stream import CodexStream
from opencode.schemas.common import UsageOut
from opencode.schemas.events import (
    Done,
    ItemsCompleted,
    MessageStart,
    ReasoningEvent,
    StepFinish,
    StepStart,
    TextEvent,
    ToolCallEvent,
    ToolCallOut,
    ToolResultEvent,
)

TURN, MESSAGE, SESSION = "msg_user", "msg_reply", "ses_1"
USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
THOUGHT = {
    "type": "reasoning",
    "id": f"rs_{MESSAGE}_1",
    "summary": [],
    "content": [{"type": "reasoning_text", "text": "Hmm."}],
    "encrypted_content": "sig",
}
CALL = {"type": "function_call", "name": "todoread", "arguments": "{}", "call_id": "c1"}
OUTPUT = {
    "type": "function_call_output",
    "call_id": "c1",
    "output": {"body": "[]", "success": True},
}


def said(text: str, phase: str) -> dict:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
        "phase": phase,
    }


def items(*items: dict) -> ItemsCompleted:
    return ItemsCompleted(turn_id=TURN, items=list(items))


def step_finish(step: int) -> StepFinish:
    return StepFinish(
        step_number=step,
        stop_reason="stop",
        cost=0.0,
        usage=UsageOut(input_tokens=3, output_tokens=2),
    )


def done(stop_reason: str = "stop") -> Done:
    return Done(message_id=MESSAGE, stop_reason=stop_reason, cost=0.0, usage=UsageOut())


START = MessageStart(message_id=MESSAGE, parent_id=TURN, session_id=SESSION, model="openai/x")
TWO_STEPS = [
    START,
    items(USER),
    StepStart(step_number=1, max_steps=25),
    ReasoningEvent(text="Hm"),
    ReasoningEvent(text="m."),
    TextEvent(text="Look"),
    TextEvent(text="ing."),
    ToolCallEvent(tool_call=ToolCallOut(id="c1", name="todoread", arguments={})),
    items(THOUGHT, said("Looking.", "commentary"), CALL),
    step_finish(1),
    ToolResultEvent(text="[]", tool_call_id="c1", name="todoread"),
    items(OUTPUT),
    StepStart(step_number=2, max_steps=25),
    TextEvent(text="Done."),
    items(said("Done.", "final_answer")),
    step_finish(2),
    done(),
]


def encode(events: list, **options) -> list[dict]:
    stream = CodexStream(**options)
    return [note for event in events for note in stream.encode(event)]


async def log(events: list):
    for event_id, event in enumerate(events, start=1):
        yield event_id, event
