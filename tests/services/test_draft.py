"""The draft's writes: whatever happens between them, the store ends up holding the draft.

Random runs of agent events with writes in between (some of them taken before more events
arrive and applied after, as a write in flight is), checked against a real SQLite store.
"""

import random

import pytest

from opencode.llm.types import Reasoning, StepOutput, ToolCall, Usage
from opencode.services.draft import Draft
from opencode.storage.base import empty_usage
from opencode.storage.sqlite import SqliteStore
from opencode.tools.registry import ToolResult
from tests.storage.conftest import message_record, session_record

PIECES = ["Hel", "lo ", "wörld", " 👋🏽", "\n", '"x"', "a" * 200]


@pytest.fixture
async def store(tmp_path):
    store = SqliteStore(str(tmp_path / "draft.db"))
    await store.initialize()
    yield store
    await store.close()


async def new_message(store: SqliteStore) -> tuple[str, str]:
    session = await store.create_session(session_record())
    record = message_record(session.id, role="assistant", status="running", parts=[], content="")
    return session.id, (await store.add_message(record)).id


class RandomTurn:
    """Agent events in a plausible order: steps of reasoning, text and tool calls."""

    def __init__(self, draft: Draft, rng: random.Random) -> None:
        self.draft, self.rng = draft, rng
        self.step = 0
        self.calls: list[ToolCall] = []
        self.new_step()

    def new_step(self) -> None:
        self.step += 1
        self.draft.step_start(self.step)

    def event(self) -> None:
        rng, draft = self.rng, self.draft
        roll = rng.random()
        if roll < 0.45:
            draft.text(rng.choice(PIECES))
        elif roll < 0.65:
            draft.reasoning(rng.choice(PIECES))
        elif roll < 0.75:
            call = ToolCall(f"call_{len(self.calls)}", "todoread", '{"x": 1}')
            self.calls.append(call)
            draft.tool_called(call)
        elif roll < 0.85:
            reasoning = (Reasoning("thought", "sig"),) if rng.random() < 0.5 else ()
            output = StepOutput("", reasoning, (), "stop", Usage(1, 1), 0.001)
            draft.step_finish(self.step, output)
            self.new_step()
        elif self.calls:
            call = rng.choice(self.calls)
            draft.tool_finished(call, ToolResult(rng.choice(PIECES), rng.random() < 0.3))


async def write(store, session_id, message_id, draft, pending) -> None:
    assert await store.write_draft(
        session_id, message_id, pending.patch, usage=empty_usage(), cost=0.0
    )
    draft.written(pending)


@pytest.mark.parametrize("seed", range(12))
async def test_the_store_holds_the_draft_after_any_sequence_of_writes(store, seed) -> None:
    rng = random.Random(seed)
    session_id, message_id = await new_message(store)
    draft = Draft()
    turn = RandomTurn(draft, rng)
    in_flight = None
    for _ in range(300):
        turn.event()
        roll = rng.random()
        if in_flight is not None and roll < 0.5:
            await write(store, session_id, message_id, draft, in_flight)
            in_flight = None
        elif in_flight is None and roll < 0.15:
            in_flight = draft.pending()  # applied only after more events, like a slow write
        elif in_flight is None and roll < 0.3:
            await write(store, session_id, message_id, draft, draft.pending())
    if in_flight is not None:
        await write(store, session_id, message_id, draft, in_flight)
    draft.interrupt_tools("interrupted")
    await write(store, session_id, message_id, draft, draft.pending())

    stored = await store.get_message(message_id)
    assert stored.parts == draft.parts
    assert stored.content == "".join(p["text"] for p in draft.parts if p["type"] == "text")


def test_a_streaming_part_is_written_as_the_text_it_gained() -> None:
    draft = Draft()
    draft.step_start(1)
    draft.text("a" * 10_000)
    first = draft.pending()
    assert first.patch.keep == 0 and len(first.patch.tail) == 2
    draft.written(first)
    draft.text("bc")
    second = draft.pending()
    assert second.patch.keep == 2 and second.patch.tail == ()
    assert second.patch.append_text == "bc" and second.patch.content_append == "bc"
    draft.written(second)
    assert draft.pending().patch.is_empty
