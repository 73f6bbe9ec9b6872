"""One run's events: the driver turns agent events into the draft (written by the process's
``DraftWriter``, never awaited on the chunk path), stream events (the run's log, which
``POST /session/{id}/message`` follows) and bus events. The task body is ``run_task.drive``;
``services/runs.py`` owns the tasks.
"""

import asyncio
import logging
import time
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
from opencode.core.errors import OpencodeError
from opencode.core.redact import redact
from opencode.core.text import scrub
from opencode.events.bus import EventBus
from opencode.llm.types import ProviderError
from opencode.schemas.common import UsageOut
from opencode.schemas.events import (
    Done,
    ErrorEvent,
    ReasoningEvent,
    RetryEvent,
    StepFinish,
    StepStart,
    TextEvent,
    ToolCallEvent,
    ToolCallOut,
    ToolResultEvent,
)
from opencode.services.draft_writer import DraftSaver
from opencode.services.run import Run
from opencode.services.run_items import TurnItems
from opencode.storage.base import MessageStatus, StepUsage

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds between draft writes while text streams
# While the store is down, the final state of a reply is retried (after its final event went
# out) for about this long, so that a short outage leaves the reply stored, not ``running``.
FINAL_WRITE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0)


class RunDriver:
    """Consumes agent events for one run: draft, persistence, stream log, bus."""

    def __init__(self, run: Run, saver: DraftSaver, bus: EventBus, *, max_steps: int) -> None:
        self.run = run
        self._saver = saver
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
            self._maybe_flush()
        elif isinstance(event, ReasoningChunk):
            draft.reasoning(event.text)
            run.emit(ReasoningEvent(text=event.text))
            self._delta("reasoning", event.text)
            self._maybe_flush()
        elif isinstance(event, StepStarted):
            draft.step_start(event.step_number)
            run.emit(StepStart(step_number=event.step_number, max_steps=self._max_steps))
            self._saver.soon()  # not awaited: the model call starts at once
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
            await self._saver.step_boundary()
        elif isinstance(event, TurnFinished):
            await self.finish("completed", event.stop_reason)

    async def _step_finished(self, event: StepFinished) -> None:
        output = event.output
        self.run.draft.step_finish(event.step_number, output)
        self._log_items(self._items.step_finished, self.run.draft.parts)
        # The step's part and its usage in the session totals land in one write.
        step = StepUsage(model=self.run.model.ref, usage=asdict(output.usage), cost=output.cost)
        await self._saver.step_boundary(step)
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

    async def save(self, **fields: Any) -> bool:
        """Store the draft now and wait for it; False if the message is gone. The write is
        never cut short: a cancel (abort) waits for it and is raised after, so what it stored
        is known, and nothing is written twice."""
        self._flushed_at = time.monotonic()
        write = asyncio.ensure_future(self._saver.save(**fields))
        cancelled = await wait_through_cancels(write)
        if cancelled:
            raise asyncio.CancelledError
        return write.result()

    async def _final_flush(self, **fields: Any) -> bool | None:
        """The last write of a run: True if stored, False if the message is gone, None if the
        store failed (the stream must still end)."""
        self.run.draft.interrupt_tools(INTERRUPTED)
        try:
            return await self.save(**fields)
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
                stored = await self.save(**fields)
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

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self._flushed_at >= FLUSH_INTERVAL:
            self._flushed_at = now
            self._saver.soon()

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


def uncancel() -> None:
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


async def wait_through_cancels(task: asyncio.Future[Any]) -> bool:
    """Wait until ``task`` is done; True if this task was cancelled meanwhile."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    return cancelled
