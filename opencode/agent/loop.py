"""The agent loop: history -> model step -> tool calls -> next step, until the model stops.

Pure: no database, no HTTP. It yields events; ``services/runs.py`` persists and streams them.
Cancelling the consumer closes the model stream and cancels running tools.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from opencode.agent.events import (
    AgentEvent,
    ReasoningChunk,
    StepFinished,
    StepStarted,
    TextChunk,
    ToolCalled,
    ToolFinished,
    TurnFinished,
)
from opencode.llm.types import (
    ChatMessage,
    ModelClient,
    ModelRequest,
    ProviderError,
    ReasoningDelta,
    StepOutput,
    TextDelta,
    ToolCall,
    Usage,
)
from opencode.tools.base import Tool, ToolContext
from opencode.tools.registry import ToolRegistry, ToolResult

ContextFactory = Callable[[ToolCall], ToolContext]


class ContextKeeper(Protocol):
    async def prepare(
        self, messages: list[ChatMessage], step_number: int, last_step: Usage | None
    ) -> list[ChatMessage]:
        """The conversation to send for this step (old messages folded into a summary, old tool
        outputs pruned); what it returns becomes the loop's history from then on."""
        ...

    async def shrink(self, messages: list[ChatMessage]) -> list[ChatMessage] | None:
        """A smaller conversation after the provider said ``messages`` overflow its context
        window, or ``None`` when there is nothing left to fold."""
        ...


class Meter(Protocol):
    """Who pays for the steps: asked before each model call, told after it."""

    async def admit(self, messages: Sequence[ChatMessage]) -> bool:
        """Reserve the next call; False when it must not start (the user's quota is spent)."""
        ...

    async def settle(self, output: StepOutput | None, *, streamed: bool = False) -> None:
        """The admitted call ended: with its output, or cut short (``output`` None; ``streamed``
        says whether any of it had arrived)."""
        ...


QUOTA_STOP = "quota"  # the turn's stop reason when the meter refused its next step


@dataclass(frozen=True)
class Turn:
    request: ModelRequest  # model, system, tools, credentials; its messages are the history
    tools: Sequence[Tool]
    max_steps: int
    context: ContextKeeper | None = None
    meter: Meter | None = None


async def run_turn(
    client: ModelClient, registry: ToolRegistry, turn: Turn, context_for: ContextFactory
) -> AsyncIterator[AgentEvent]:
    messages = list(turn.request.messages)
    allowed = {tool.name for tool in turn.tools}
    usage, cost = Usage(), 0.0
    last_step: Usage | None = None
    for step_number in range(1, turn.max_steps + 1):
        if turn.context is not None:
            messages = await turn.context.prepare(messages, step_number, last_step)
        if turn.meter is not None and not await turn.meter.admit(messages):
            yield TurnFinished(QUOTA_STOP, usage, cost)  # the step is not started at all
            return
        yield StepStarted(step_number)
        output: StepOutput | None = None
        streamed = False
        try:
            async for event in _one_step(client, turn, messages):
                if not isinstance(event, StepOutput):
                    streamed = True
                    yield event
                else:
                    output = event
        finally:
            if turn.meter is not None:
                await turn.meter.settle(output, streamed=streamed)
        if output is None:  # a ModelClient must end with a StepOutput; treat a bare end as empty
            output = StepOutput("", (), (), "stop", Usage(), 0.0)
        usage, cost = usage + output.usage, cost + output.cost
        last_step = output.usage
        for call in output.tool_calls:
            yield ToolCalled(call)
        yield StepFinished(step_number, output)
        messages.append(
            ChatMessage(
                "assistant", output.text, reasoning=output.reasoning, tool_calls=output.tool_calls
            )
        )
        if not output.tool_calls:
            yield TurnFinished(output.finish_reason, usage, cost)
            return
        results: dict[str, ToolResult] = {}
        async for call, result in _run_tools(registry, output.tool_calls, allowed, context_for):
            results[call.id] = result
            yield ToolFinished(call, result)
        messages.extend(_tool_message(call, results[call.id]) for call in output.tool_calls)
    yield TurnFinished("max_steps", usage, cost)


async def _one_step(
    client: ModelClient, turn: Turn, messages: list[ChatMessage]
) -> AsyncIterator[TextChunk | ReasoningChunk | StepOutput]:
    """One step: the model call, sent once more with a smaller conversation if the provider
    says it overflows the context window (before anything streamed)."""
    shrunk = False
    while True:
        streamed = False
        try:
            async for event in _step_stream(client, turn.request, messages):
                streamed = streamed or not isinstance(event, StepOutput)
                yield event
            return
        except ProviderError as error:
            if streamed or shrunk or not error.context_overflow or turn.context is None:
                raise
            smaller = await turn.context.shrink(messages)
            if smaller is None:
                raise
            messages[:], shrunk = smaller, True


async def _step_stream(
    client: ModelClient, request: ModelRequest, messages: list[ChatMessage]
) -> AsyncIterator[TextChunk | ReasoningChunk | StepOutput]:
    """One model call as loop events, ending with its StepOutput; the stream is always closed."""
    stream = client.stream(replace(request, messages=tuple(messages)))
    try:
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                yield TextChunk(chunk.text)
            elif isinstance(chunk, ReasoningDelta):
                yield ReasoningChunk(chunk.text)
            else:
                yield chunk
    finally:
        await stream.aclose()


async def _run_tools(
    registry: ToolRegistry,
    calls: Sequence[ToolCall],
    allowed: set[str],
    context_for: ContextFactory,
) -> AsyncIterator[tuple[ToolCall, ToolResult]]:
    """Run every call of a step concurrently; yield each result as soon as it is ready."""

    async def run_one(call: ToolCall) -> tuple[ToolCall, ToolResult]:
        return call, await registry.execute(call, context_for(call), allowed)

    tasks = [asyncio.create_task(run_one(call), name=f"tool:{call.name}") for call in calls]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _tool_message(call: ToolCall, result: ToolResult) -> ChatMessage:
    return ChatMessage("tool", result.text, tool_call_id=call.id, is_error=result.is_error)
