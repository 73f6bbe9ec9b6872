"""The agent loop over the real LiteLLM path (fake provider on loopback)."""

import asyncio
from dataclasses import replace

import pytest
from pydantic import BaseModel

from opencode.agent.events import (
    AgentEvent,
    StepFinished,
    TextChunk,
    ToolCalled,
    ToolFinished,
    TurnFinished,
)
from opencode.agent.history import build_history
from opencode.agent.loop import Turn, run_turn
from opencode.core.ids import utc_now
from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.types import ChatMessage, ModelRequest, ProviderError
from opencode.storage.base import MessageRecord
from opencode.tools.base import Tool, ToolContext
from opencode.tools.registry import ToolRegistry
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(30)


class BarrierParams(BaseModel):
    label: str


class BarrierTool(Tool):
    """Finishes only when ``parties`` calls run at the same time: proves concurrency."""

    name = "barrier"
    description = "Wait for the other calls."
    Params = BarrierParams

    def __init__(self, parties: int) -> None:
        self.barrier = asyncio.Barrier(parties)
        self.cancelled = 0

    async def run(self, params: BarrierParams, ctx: ToolContext) -> str:
        try:
            await asyncio.wait_for(self.barrier.wait(), 5)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return f"{params.label} done"


class HangTool(Tool):
    name = "hang"
    description = "Never returns."
    Params = BarrierParams
    cancelled = 0

    async def run(self, params: BarrierParams, ctx: ToolContext) -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            HangTool.cancelled += 1
            raise
        return ""


def turn_for(fake, tools, max_steps=5) -> Turn:
    registry_tools = list(tools)
    request = ModelRequest(
        model="openai/gpt-4o-mini",
        messages=(ChatMessage("user", "go"),),
        api_key="test-key",
        api_base=fake.openai_base,
    )
    return Turn(request=request, tools=registry_tools, max_steps=max_steps)


def registry_of(*tools: Tool) -> ToolRegistry:
    registry = ToolRegistry()
    for tool in tools:
        registry.register(tool)
    return registry


def context_for(call) -> ToolContext:
    return ToolContext(session_id="ses", message_id="msg", call_id=call.id)


async def collect_events(registry: ToolRegistry, turn: Turn) -> list[AgentEvent]:
    return [event async for event in run_turn(LiteLLMClient(), registry, turn, context_for)]


def start_turn(registry: ToolRegistry, turn: Turn) -> tuple[asyncio.Task, list[AgentEvent]]:
    """Run the turn in a task; the list fills with its events as they come."""
    seen: list[AgentEvent] = []

    async def consume() -> None:
        async for event in run_turn(LiteLLMClient(), registry, turn, context_for):
            seen.append(event)

    return asyncio.create_task(consume()), seen


async def test_tool_calls_of_a_step_run_concurrently(fake):
    tool = BarrierTool(3)
    fake.script(
        Reply(tool_calls=[(f"c{i}", "barrier", {"label": f"t{i}"}) for i in range(3)]),
        Reply(text="all done"),
    )
    events = await collect_events(registry_of(tool), turn_for(fake, [tool]))
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert sorted(e.result.text for e in finished) == ["t0 done", "t1 done", "t2 done"]
    assert not any(e.result.is_error for e in finished)
    assert isinstance(events[-1], TurnFinished) and events[-1].stop_reason == "stop"
    # results went back in call order
    tool_messages = [m for m in fake.requests[-1].json["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["c0", "c1", "c2"]


async def test_unknown_tool_and_bad_arguments_go_back_to_the_model(fake):
    tool = BarrierTool(1)
    fake.script(
        Reply(tool_calls=[("a", "nope", {}), ("b", "barrier", "{not json")]),
        Reply(text="sorry"),
    )
    events = await collect_events(registry_of(tool), turn_for(fake, [tool]))
    results = {e.call.id: e.result for e in events if isinstance(e, ToolFinished)}
    assert results["a"].is_error and "barrier" in results["a"].text
    assert results["b"].is_error and "JSON" in results["b"].text
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == "sorry"
    assert events[-1].stop_reason == "stop"


async def test_tool_not_enabled_for_the_turn_is_an_error_result(fake):
    enabled, disabled = BarrierTool(1), HangTool()
    fake.script(Reply(tool_calls=[("a", "hang", {"label": "x"})]), Reply(text="ok"))
    events = await collect_events(registry_of(enabled, disabled), turn_for(fake, [enabled]))
    result = next(e.result for e in events if isinstance(e, ToolFinished))
    assert result.is_error and "not enabled" in result.text


async def test_max_steps_stops_the_loop(fake):
    tool = BarrierTool(1)
    fake.script(*[Reply(tool_calls=[(f"c{i}", "barrier", {"label": "x"})]) for i in range(3)])
    events = await collect_events(registry_of(tool), turn_for(fake, [tool], max_steps=3))
    steps = [e for e in events if isinstance(e, StepFinished)]
    assert len(steps) == 3 and len(fake.requests) == 3
    assert events[-1].stop_reason == "max_steps"
    assert events[-1].usage.input_tokens == 30


async def test_cancelling_the_turn_cancels_running_tools(fake):
    HangTool.cancelled = 0
    tool = HangTool()
    fake.script(Reply(tool_calls=[("a", "hang", {"label": "1"}), ("b", "hang", {"label": "2"})]))
    task, seen = start_turn(registry_of(tool), turn_for(fake, [tool]))
    while not any(isinstance(e, StepFinished) for e in seen):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert HangTool.cancelled == 2
    assert [e.call.id for e in seen if isinstance(e, ToolCalled)] == ["a", "b"]


async def test_cancelling_mid_stream_closes_the_provider_stream(fake):
    fake.script(Reply(text=["one ", "two "], hang_after=2))
    task, seen = start_turn(registry_of(), turn_for(fake, []))
    while len([e for e in seen if isinstance(e, TextChunk)]) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.wait_closed(1.0)


class FoldingKeeper:
    """A ContextKeeper that keeps messages as they are and, asked to shrink, drops all but the
    last one (or refuses, with ``can_shrink=False``), recording what it was given."""

    def __init__(self, *, can_shrink: bool = True) -> None:
        self.can_shrink = can_shrink
        self.prepared: list[int] = []
        self.shrunk: list[int] = []

    async def prepare(self, messages, step_number, last_step):
        self.prepared.append(step_number)
        return messages

    async def shrink(self, messages):
        self.shrunk.append(len(messages))
        return messages[-1:] if self.can_shrink else None


OVERFLOW = "This model's maximum context length is 128000 tokens; you sent 140000."


def long_turn(fake, keeper: FoldingKeeper) -> Turn:
    turn = turn_for(fake, [])
    history = (ChatMessage("user", "old"), ChatMessage("assistant", "older answer"))
    request = replace(turn.request, messages=(*history, ChatMessage("user", "go")))
    return replace(turn, request=request, context=keeper)


async def test_an_overflowing_step_is_shrunk_and_sent_once_more(fake):
    fake.script(Reply(status=400, error_message=OVERFLOW), Reply(text="fits now"))
    keeper = FoldingKeeper()
    events = await collect_events(registry_of(), long_turn(fake, keeper))
    assert keeper.prepared == [1] and keeper.shrunk == [3]
    assert [m["content"] for m in fake.requests[-1].json["messages"]] == ["go"]
    assert isinstance(events[-1], TurnFinished) and events[-1].stop_reason == "stop"


async def test_an_overflow_that_cannot_shrink_or_repeats_ends_the_turn(fake):
    for keeper, replies in (
        (FoldingKeeper(can_shrink=False), [Reply(status=400, error_message=OVERFLOW)]),
        (FoldingKeeper(), [Reply(status=400, error_message=OVERFLOW)] * 2),
    ):
        fake.script(*replies)
        with pytest.raises(ProviderError) as caught:
            await collect_events(registry_of(), long_turn(fake, keeper))
        assert caught.value.context_overflow and keeper.shrunk == [3]


def record(role, parts, content="", status="completed"):
    now = utc_now()
    return MessageRecord(
        id="m",
        session_id="s",
        role=role,
        created_at=now,
        updated_at=now,
        status=status,
        parts=parts,
        content=content,
    )


def test_history_splits_steps_and_closes_unfinished_tool_calls():
    parts = [
        {"type": "step-start", "step_number": 1},
        {"type": "reasoning", "text": "hmm", "signature": "sig", "redacted": None},
        {"type": "text", "text": "Let me check."},
        {
            "type": "tool",
            "call_id": "c1",
            "name": "todoread",
            "arguments": {},
            "state": "completed",
            "output": "[]",
        },
        {
            "type": "step-finish",
            "step_number": 1,
            "stop_reason": "tool_calls",
            "cost": 0,
            "usage": {},
        },
        {"type": "step-start", "step_number": 2},
        {
            "type": "tool",
            "call_id": "c2",
            "name": "question",
            "arguments": {"q": 1},
            "state": "running",
            "output": None,
        },
        {"type": "step-start", "step_number": 3},
    ]
    history = build_history(
        [record("user", [], "hi"), record("assistant", parts, status="aborted")]
    )
    roles = [m.role for m in history]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    first = history[1]
    assert first.text == "Let me check." and first.reasoning[0].signature == "sig"
    assert first.tool_calls[0].arguments == "{}"
    assert history[2].text == "[]" and not history[2].is_error
    assert history[4].is_error and "interrupted" in history[4].text
    assert history[3].tool_calls[0].arguments == '{"q": 1}'


class CountingMeter:
    """A ``Meter`` that admits ``budget`` steps and records what it was told."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.settled: list[tuple[object, bool]] = []

    async def admit(self, messages) -> bool:
        if self.budget == 0:
            return False
        self.budget -= 1
        return True

    async def settle(self, output, *, streamed=False) -> None:
        self.settled.append((output, streamed))


async def test_a_step_the_meter_refuses_is_not_started_and_the_turn_stops_with_quota(fake):
    tool = BarrierTool(1)
    fake.script(Reply(tool_calls=[("a", "barrier", {"label": "x"})]), Reply(text="never"))
    meter = CountingMeter(budget=1)
    turn = replace(turn_for(fake, [tool]), meter=meter)
    events = await collect_events(registry_of(tool), turn)
    assert isinstance(events[-1], TurnFinished) and events[-1].stop_reason == "quota"
    assert sum(isinstance(e, StepFinished) for e in events) == 1
    assert len(fake.requests) == 1  # the second step never reached the provider
    [(output, _)] = meter.settled
    assert output.usage.input_tokens > 0  # settled with the step's real usage


async def test_a_failed_step_is_settled_without_output(fake):
    fake.script(Reply(status=400, body={"error": {"message": "bad request"}}))
    meter = CountingMeter(budget=5)
    with pytest.raises(ProviderError):
        await collect_events(registry_of(), replace(turn_for(fake, []), meter=meter))
    assert meter.settled == [(None, False)]
