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


@dataclass(frozen=True)
class Turn:
    request: ModelRequest  # model, system, tools, credentials; its messages are the history
    tools: Sequence[Tool]
    max_steps: int
    context: ContextKeeper | None = None


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
        yield StepStarted(step_number)
        output: StepOutput | None = None
        shrunk = False
        while True:
            streamed = False
            try:
                async for event in _step_stream(client, turn.request, messages):
                    if isinstance(event, StepOutput):
                        output = event
                    else:
                        streamed = True
                        yield event
                break
            except ProviderError as error:
                # Too long for the window: fold what can be folded and send the step once more.
                if streamed or shrunk or not error.context_overflow or turn.context is None:
                    raise
                smaller = await turn.context.shrink(messages)
                if smaller is None:
                    raise
                messages, shrunk = smaller, True
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
