"""One run: the draft message, its stream log, and the task body that drives the agent loop.

The driver turns agent events into stored parts, stream events (the run's log, which
``POST /session/{id}/message`` follows) and bus events. ``services/runs.py`` owns the tasks.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

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
from opencode.agent.history import INTERRUPTED
from opencode.agent.loop import Turn, run_turn
from opencode.core.errors import OpencodeError
from opencode.events.bus import EventBus
from opencode.llm.types import ModelClient, ProviderError, ToolCall
from opencode.schemas.common import UsageOut
from opencode.schemas.events import (
    Done,
    ErrorEvent,
    QuestionEvent,
    ReasoningEvent,
    StepFinish,
    StepStart,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    ToolCallOut,
    ToolResultEvent,
)
from opencode.services.draft import Draft
from opencode.services.providers import ResolvedModel
from opencode.services.questions import QuestionBroker
from opencode.services.todos import TodoService
from opencode.storage.base import MessageRecord, Store
from opencode.tools.base import ToolContext
from opencode.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds between draft writes while text streams


@dataclass
class Run:
    session_id: str
    message_id: str
    model: ResolvedModel
    draft: Draft = field(default_factory=Draft)
    log: list[tuple[int, StreamEvent]] = field(default_factory=list)
    finished: bool = False
    task: asyncio.Task | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, event: StreamEvent) -> None:
        self.log.append((len(self.log) + 1, event))
        self._changed.set()

    def close(self) -> None:
        self.finished = True
        self._changed.set()

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, StreamEvent]]:
        """Every event with id > ``after``, live, until the run is over."""
        sent = after
        while True:
            while sent < len(self.log):
                sent += 1
                yield self.log[sent - 1]
            if self.finished:
                return
            self._changed.clear()
            await self._changed.wait()


class RunTools:
    """What tools of one run can reach: the session's todos and the user, via questions."""

    def __init__(self, run: Run, todos: TodoService, questions: QuestionBroker) -> None:
        self._run = run
        self._todos = todos.for_session(run.session_id)
        self._questions = questions

    def context_for(self, call: ToolCall) -> ToolContext:
        return ToolContext(
            session_id=self._run.session_id,
            message_id=self._run.message_id,
            call_id=call.id,
            todos=self._todos,
            questions=self,
        )

    async def ask(self, call_id: str, questions: list[dict[str, Any]]) -> list[list[str]]:
        def announce(record: Any) -> None:
            self._run.emit(
                QuestionEvent(question_id=record.id, tool_call_id=call_id, questions=questions)
            )

        return await self._questions.ask(
            session_id=self._run.session_id,
            message_id=self._run.message_id,
            call_id=call_id,
            questions=questions,
            on_asked=announce,
        )


class RunDriver:
    """Consumes agent events for one run: draft, persistence, stream log, bus."""

    def __init__(self, run: Run, store: Store, bus: EventBus, *, max_steps: int) -> None:
        self.run = run
        self._store = store
        self._bus = bus
        self._max_steps = max_steps
        self._flushed_at = time.monotonic()

    async def apply(self, event: AgentEvent) -> None:
        run, draft = self.run, self.run.draft
        if isinstance(event, TextChunk):
            draft.text(event.text)
            run.emit(TextEvent(text=event.text))
            self._delta("text", event.text)
            await self._maybe_flush()
        elif isinstance(event, ReasoningChunk):
            draft.reasoning(event.text)
            run.emit(ReasoningEvent(text=event.text))
            self._delta("reasoning", event.text)
            await self._maybe_flush()
        elif isinstance(event, StepStarted):
            draft.step_start(event.step_number)
            run.emit(StepStart(step_number=event.step_number, max_steps=self._max_steps))
            await self.flush()
        elif isinstance(event, ToolCalled):
            part = draft.tool_called(event.call)
            run.emit(
                ToolCallEvent(
                    tool_call=ToolCallOut(
                        id=event.call.id, name=event.call.name, arguments=part["arguments"]
                    )
                )
            )
        elif isinstance(event, StepFinished):
            await self._step_finished(event)
        elif isinstance(event, ToolFinished):
            draft.tool_finished(event.call, event.result)
            run.emit(
                ToolResultEvent(
                    text=event.result.text,
                    tool_call_id=event.call.id,
                    name=event.call.name,
                    is_error=event.result.is_error,
                )
            )
            await self.flush()
        elif isinstance(event, TurnFinished):
            await self.finish("completed", event.stop_reason)

    async def _step_finished(self, event: StepFinished) -> None:
        output = event.output
        self.run.draft.step_finish(event.step_number, output)
        await self._store.record_step_usage(
            self.run.session_id,
            model=self.run.model.ref,
            usage=asdict(output.usage),
            cost=output.cost,
        )
        self.run.emit(
            StepFinish(
                step_number=event.step_number,
                stop_reason=output.finish_reason,
                cost=output.cost,
                usage=UsageOut(**asdict(output.usage)),
            )
        )
        await self.flush()
        self._bus.publish("session.updated", id=self.run.session_id)

    async def finish(self, status: str, stop_reason: str) -> None:
        """Store the final message and end the stream with ``done``."""
        record = await self._final_flush(status=status)
        self.run.emit(
            Done(
                message_id=self.run.message_id,
                stop_reason=stop_reason,
                cost=self.run.draft.cost,
                usage=UsageOut(**self.run.draft.usage_dict()),
            )
        )
        self._message_updated(record)

    async def fail(self, error: str, status_code: int | None = None) -> None:
        """Store what was generated, mark the message ``error``, end the stream with ``error``."""
        record = await self._final_flush(status="error", error=error)
        self.run.emit(
            ErrorEvent(error=error, message_id=self.run.message_id, status_code=status_code)
        )
        self._bus.publish(
            "session.error",
            session_id=self.run.session_id,
            message_id=self.run.message_id,
            error=error,
        )
        self._message_updated(record)

    async def flush(self, **fields: Any) -> MessageRecord | None:
        draft = self.run.draft
        self._flushed_at = time.monotonic()
        return await self._store.update_message(
            self.run.message_id,
            parts=draft.parts,
            content=draft.content,
            usage=draft.usage_dict(),
            cost=draft.cost,
            **fields,
        )

    async def _final_flush(self, **fields: Any) -> MessageRecord | None:
        """The last write of a run; if the store fails, the stream must still end."""
        self.run.draft.interrupt_tools(INTERRUPTED)
        try:
            return await self.flush(**fields)
        except Exception:
            log.exception("could not store the final state of message %s", self.run.message_id)
            return None

    async def _maybe_flush(self) -> None:
        if time.monotonic() - self._flushed_at >= FLUSH_INTERVAL:
            await self.flush()

    def _delta(self, kind: str, text: str) -> None:
        self._bus.publish(
            "message.part.delta",
            session_id=self.run.session_id,
            message_id=self.run.message_id,
            part_type=kind,
            delta=text,
        )

    def _message_updated(self, record: MessageRecord | None) -> None:
        if record is not None:
            self._bus.publish(
                "message.updated",
                session_id=record.session_id,
                id=record.id,
                status=record.status,
                role=record.role,
            )
        self._bus.publish("session.updated", id=self.run.session_id)


async def drive(
    driver: RunDriver, client: ModelClient, registry: ToolRegistry, turn: Turn, tools: RunTools
) -> None:
    """The body of a run's task. Always ends the stream with ``done`` or ``error``."""
    try:
        async with contextlib.aclosing(
            run_turn(client, registry, turn, tools.context_for)
        ) as events:
            async for event in events:
                await driver.apply(event)
    except asyncio.CancelledError:
        # Aborted: keep what was generated. The cancel is consumed here (this task is the run's
        # owner); finishing is shielded so a second cancel cannot cut the final write.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        await asyncio.shield(driver.finish("aborted", "aborted"))
    except (ProviderError, OpencodeError) as exc:
        await driver.fail(exc.message, exc.status_code)
    except Exception as exc:
        log.exception("run %s failed", driver.run.message_id)
        await driver.fail(f"Internal error: {type(exc).__name__}: {exc}")
