"""One run (a turn being generated): its draft message and its event log.

The log is what ``POST /session/{id}/message`` and ``GET /session/{id}/stream`` follow. Its ids
come from the process's ``EventIds`` clock, so they only grow, across turns and restarts, and a
``Last-Event-ID`` from another turn or process can be recognised instead of being trusted.
Whatever happens to the task that drives it, a run's log ends with exactly one final event.
"""

import asyncio
import bisect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from opencode.core.ids import EventIds
from opencode.events.sse import encode
from opencode.schemas.events import (
    FINAL_EVENTS,
    INTERNAL_EVENTS,
    ErrorEvent,
    ResyncEvent,
    StreamEvent,
)
from opencode.services.draft import Draft
from opencode.services.providers import ResolvedModel

log = logging.getLogger(__name__)

StopReason = Literal["aborted", "shutdown"]
LOST = "internal error: the reply ended without a final event"


@dataclass
class Run:
    session_id: str
    message_id: str
    model: ResolvedModel
    ids: EventIds
    turn_id: str = ""  # the user message that started the turn
    draft: Draft = field(default_factory=Draft)
    task: asyncio.Task | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: StopReason | None = None  # set by the first abort; later ones only wait
    _ids: list[int] = field(default_factory=list)
    _events: list[StreamEvent] = field(default_factory=list)
    _frames: list[bytes | None] = field(default_factory=list)  # SSE, encoded on first send
    _ended: bool = False  # a final event is in the log
    _closed: bool = False  # nothing more will be logged
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ended(self) -> bool:
        return self._ended

    def emit(self, event: StreamEvent) -> None:
        """Log an event; nothing after the final one (``done`` or ``error``)."""
        if self._ended or self._closed:
            log.warning("run %s: %s after the final event dropped", self.message_id, event.type)
            return
        self._ids.append(self.ids.next())
        self._events.append(event)
        self._frames.append(None)
        self._ended = isinstance(event, FINAL_EVENTS)
        self._changed.set()

    def request_stop(self, reason: StopReason) -> bool:
        """Ask the task to stop (keeping the partial reply); True for the first request only,
        so however many aborts arrive, the task is cancelled once."""
        if self.stop_reason is not None or self.task is None or self.task.done():
            return False
        self.stop_reason = reason
        self.task.cancel()
        return True

    def close(self) -> None:
        """The task is over: if it could not log a final event, log one now."""
        if not self._ended:
            self.emit(ErrorEvent(error=LOST, message_id=self.message_id))
        self._closed = True
        self._changed.set()

    def issued(self, event_id: int) -> bool:
        """Whether this run's log holds ``event_id`` (so a stream can resume after it)."""
        return bool(self._ids) and self._ids[0] <= event_id <= self._ids[-1]

    async def follow(
        self, last_event_id: int | None = None
    ) -> AsyncIterator[tuple[int | None, StreamEvent | ResyncEvent]]:
        """Every event after ``last_event_id`` (all of them without one), live, until the
        final event (or the run is closed: a run may outlive its final event while it retries
        storing it). An id this run did not issue gets a ``server.resync`` first, then the
        whole turn from its start."""
        start, resync = self._start(last_event_id)
        if resync is not None:
            yield None, resync
        async for first, end in self._spans(start):
            for index in range(first, end):
                yield self._ids[index], self._events[index]

    async def frames(self, last_event_id: int | None = None) -> AsyncIterator[bytes]:
        """``follow`` as the seed SSE stream (internal events left out): each event encoded
        once for every stream that sends it, and everything not yet sent joined into one
        write, so a stream that fell behind catches up in one ``send``."""
        start, resync = self._start(last_event_id)
        if resync is not None:
            yield encode(None, resync)
        async for first, end in self._spans(start):
            if batch := b"".join(self._frame(index) for index in range(first, end)):
                yield batch

    def _start(self, last_event_id: int | None) -> tuple[int, ResyncEvent | None]:
        if not last_event_id:
            return 0, None
        if self.issued(last_event_id):
            return bisect.bisect_right(self._ids, last_event_id), None
        return 0, ResyncEvent(reason=self._resync_reason(last_event_id))

    async def _spans(self, sent: int) -> AsyncIterator[tuple[int, int]]:
        """``(first, end)`` index ranges of the log as it grows, from ``sent`` on."""
        while True:
            if sent < len(self._events):
                first, sent = sent, len(self._events)
                yield first, sent
                continue
            if self._closed or self._ended:
                return
            self._changed.clear()
            await self._changed.wait()

    def _frame(self, index: int) -> bytes:
        frame = self._frames[index]
        if frame is None:
            event = self._events[index]
            frame = b"" if isinstance(event, INTERNAL_EVENTS) else encode(self._ids[index], event)
            self._frames[index] = frame
        return frame

    def _resync_reason(self, last_event_id: int) -> str:
        if not self._ids or last_event_id < self._ids[0]:
            return (
                "Last-Event-ID is from before this turn (an earlier turn, or before a server "
                "restart); this turn is sent from its start"
            )
        return "Last-Event-ID was not issued by this turn; this turn is sent from its start"
