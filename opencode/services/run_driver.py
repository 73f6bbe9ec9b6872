"""One run: the draft message, its stream log, and the task body that drives the agent loop.

The driver turns agent events into stored parts, stream events (the run's log, which
``POST /session/{id}/message`` follows) and bus events. ``services/runs.py`` owns the tasks.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import asdict
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
from opencode.core.ids import new_id
from opencode.core.redact import redact
from opencode.core.text import scrub
from opencode.events.bus import EventBus
from opencode.llm.types import ModelClient, ProviderError, ToolCall
from opencode.schemas.common import UsageOut
from opencode.schemas.events import (
    Done,
    ErrorEvent,
    QuestionEvent,
    ReasoningEvent,
    RetryEvent,
    StepFinish,
    StepStart,
    TextEvent,
    ToolCallEvent,
    ToolCallOut,
    ToolResultEvent,
)
from opencode.services.questions import QuestionBroker
from opencode.services.run import Run
from opencode.services.run_items import TurnItems
from opencode.services.todos import TodoService
from opencode.storage.base import MessageStatus, StepUsage, Store
from opencode.tools.base import ToolContext
from opencode.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds between draft writes while text streams
# While the store is down, the final state of a reply is retried (after its final event went
# out) for about this long, so that a short outage leaves the reply stored, not ``running``.
FINAL_WRITE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0)


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
        self._items = TurnItems(run.emit, message_id=run.message_id, turn_id=run.turn_id)

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
            self._log_items(self._items.tool_finished, draft.parts, event.call.id)
            await self.flush()
        elif isinstance(event, TurnFinished):
            await self.finish("completed", event.stop_reason)

    async def _step_finished(self, event: StepFinished) -> None:
        output = event.output
        self.run.draft.step_finish(event.step_number, output)
        self._log_items(self._items.step_finished, self.run.draft.parts)
        # The step's part and its usage in the session totals land in one write.
        step = StepUsage(model=self.run.model.ref, usage=asdict(output.usage), cost=output.cost)
        await self.flush(step=step)
        self.run.emit(
            StepFinish(
                step_number=event.step_number,
                stop_reason=output.finish_reason,
                cost=output.cost,
                usage=UsageOut(**asdict(output.usage)),
            )
        )
        self._bus.publish("session.updated", id=self.run.session_id)

    def _log_items(self, log_step: Any, *args: Any) -> None:
        """Codex items are a view of the turn: a fault there costs raw items, never the turn."""
        try:
            log_step(*args)
        except Exception:
            log.exception("could not log the Codex items of message %s", self.run.message_id)

    def retrying(self, attempt: int, error: ProviderError, delay: float) -> None:
        """``on_retry`` of this run's model client: the retry goes into the message stream
        and to ``/event`` subscribers."""
        delay = round(delay, 3)
        self.run.emit(RetryEvent(attempt=attempt, delay=delay, message=error.message))
        self._bus.publish(
            "session.status",
            session_id=self.run.session_id,
            status="retry",
            attempt=attempt,
            delay=delay,
            message=error.message,
        )

    async def finish(self, status: MessageStatus, stop_reason: str) -> None:
        """Store the final message and end the stream with ``done``."""
        if self.run.ended:
            return
        stored = await self._final_flush(status=status)
        self._log_items(self._items.ending, self.run.draft.parts)
        self.run.emit(
            Done(
                message_id=self.run.message_id,
                stop_reason=stop_reason,
                cost=self.run.draft.cost,
                usage=UsageOut(**self.run.draft.usage_dict()),
            )
        )
        if stored is None:
            stored = await self._store_final_later(status=status)
        self._message_updated(status if stored else None)

    async def fail(self, error: str, status_code: int | None = None) -> None:
        """Store what was generated, mark the message ``error``, end the stream with ``error``."""
        if self.run.ended:
            return
        error = redact(scrub(error))
        stored = await self._final_flush(status="error", error=error)
        self._log_items(self._items.ending, self.run.draft.parts)
        self.run.emit(
            ErrorEvent(error=error, message_id=self.run.message_id, status_code=status_code)
        )
        if stored is None:
            stored = await self._store_final_later(status="error", error=error)
        self._bus.publish(
            "session.error",
            session_id=self.run.session_id,
            message_id=self.run.message_id,
            error=error,
        )
        self._message_updated("error" if stored else None)

    async def flush(self, **fields: Any) -> bool:
        """Write what changed since the last write; False if the message is gone. The write is
        never cut short: a cancel (abort) waits for it and is raised after, so what it stored
        is known, and nothing is written twice."""
        draft = self.run.draft
        pending = draft.pending()
        self._flushed_at = time.monotonic()
        write = asyncio.ensure_future(
            self._store.write_draft(
                self.run.session_id,
                self.run.message_id,
                pending.patch,
                usage=draft.usage_dict(),
                cost=draft.cost,
                **fields,
            )
        )
        cancelled = await _wait_through_cancels(write)
        failure = write.exception()
        if failure is None and write.result():
            draft.written(pending)
        if cancelled:
            raise asyncio.CancelledError
        if failure is not None:
            raise failure
        return write.result()

    async def _final_flush(self, **fields: Any) -> bool | None:
        """The last write of a run: True if stored, False if the message is gone, None if the
        store failed (the stream must still end)."""
        self.run.draft.interrupt_tools(INTERRUPTED)
        try:
            return await self.flush(**fields)
        except OpencodeError as exc:  # the store is down: say so, without a traceback
            log.warning("could not store message %s: %s", self.run.message_id, exc.message)
        except Exception:
            log.exception("could not store the final state of message %s", self.run.message_id)
        return None

    async def _store_final_later(self, **fields: Any) -> bool:
        """Retry the final write while the store recovers (the final event has gone out; the
        session stays busy meanwhile, so nothing else writes to it)."""
        for delay in FINAL_WRITE_RETRY_DELAYS:
            await asyncio.sleep(delay)
            try:
                stored = await self.flush(**fields)
            except Exception as exc:
                log.debug("message %s still not stored: %r", self.run.message_id, exc)
                continue
            log.info("stored message %s after the store came back", self.run.message_id)
            return stored
        log.error(
            "gave up storing the final state of message %s; it stays running until the next "
            "start marks it interrupted",
            self.run.message_id,
        )
        return False

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

    def _message_updated(self, status: str | None) -> None:
        if status is not None:
            self._bus.publish(
                "message.updated",
                session_id=self.run.session_id,
                id=self.run.message_id,
                status=status,
                role="assistant",
            )
        self._bus.publish("session.updated", id=self.run.session_id)


async def drive(
    driver: RunDriver,
    client: ModelClient,
    registry: ToolRegistry,
    turn: Turn,
    tools: RunTools,
    *,
    turn_timeout: float | None = None,
) -> None:
    """The body of a run's task. Always ends the stream with ``done`` or ``error``, keeping
    what was generated: aborted, timed out, failed or crashed."""
    deadline = asyncio.timeout(turn_timeout)
    try:
        async with (
            deadline,
            contextlib.aclosing(run_turn(client, registry, turn, tools.context_for)) as events,
        ):
            async for event in events:
                await driver.apply(event)
    except asyncio.CancelledError:
        # Aborted (or the server is stopping): keep what was generated. The cancel is consumed
        # here (this task is the run's owner), and so is any further one while the final
        # write runs, so the stream cannot end without its ``done``.
        _uncancel()
        reason = driver.run.stop_reason or "aborted"
        await _through_cancels(driver.finish("aborted", reason))
    except TimeoutError:
        if not deadline.expired():
            raise
        await driver.fail(
            f"The turn took longer than {turn_timeout:g} s (OPENCODE_TURN_TIMEOUT) and was "
            "stopped; what was generated is kept.",
            504,
        )
    except (ProviderError, OpencodeError) as exc:
        await driver.fail(exc.message, exc.status_code)
    except Exception:
        reference = new_id("err")
        log.exception("run %s failed (%s)", driver.run.message_id, reference)
        await driver.fail(f"internal error (id {reference})")


def _uncancel() -> None:
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


async def _through_cancels(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end however many times this task is cancelled meanwhile."""
    task = asyncio.ensure_future(work)
    await _wait_through_cancels(task)
    _uncancel()
    task.result()


async def _wait_through_cancels(task: asyncio.Future[Any]) -> bool:
    """Wait until ``task`` is done; True if this task was cancelled meanwhile."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    return cancelled
