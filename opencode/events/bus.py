"""In-process event bus behind ``GET /event``: fan-out to subscribers plus a replay buffer.

Publishing never blocks: a subscriber whose queue is full is dropped (its stream ends) and can
reconnect with ``Last-Event-ID`` to replay what it missed from the buffer. Ids come from an
``EventIds`` clock, so they only grow across restarts too; a ``Last-Event-ID`` the buffer cannot
replay from (too old, from before a restart, or from the future) gets a ``server.resync`` first.
At shutdown every subscriber gets a final ``server.shutdown`` event before its stream ends.
"""

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from opencode.core.ids import EventIds
from opencode.schemas.events import BusEvent

log = logging.getLogger(__name__)

_WAKE = object()  # unblocks a subscriber waiting on an empty queue when it is closed
SHUTDOWN = "server.shutdown"
RESYNC = "server.resync"


class _Subscriber:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(size)
        self.closed = False

    def close(self) -> None:
        """Stop after what is queued: delivered events stay contiguous, so a reconnect with
        the last id seen replays exactly what was missed."""
        self.closed = True
        if self.queue.empty():
            self.queue.put_nowait(_WAKE)


class EventBus:
    def __init__(
        self, *, replay_size: int = 1000, queue_size: int = 2000, ids: EventIds | None = None
    ) -> None:
        self._ids = ids or EventIds()
        self._buffer: deque[tuple[int, BusEvent]] = deque(maxlen=replay_size)
        self._evicted = 0  # id of the newest event no longer in the buffer
        self._subscribers: set[_Subscriber] = set()
        self._queue_size = queue_size
        self._closed = False

    def publish(self, type: str, **properties: Any) -> int:
        event_id = self._ids.next()
        item = (event_id, BusEvent(type=type, properties=properties))
        if len(self._buffer) == self._buffer.maxlen:
            self._evicted = self._buffer[0][0]
        self._buffer.append(item)
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning("event bus subscriber is too slow; closing its stream")
                self._subscribers.discard(subscriber)
                subscriber.close()
        return event_id

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def subscribe(
        self, last_event_id: int | None = None
    ) -> AsyncIterator[tuple[int | None, BusEvent]]:
        """Yield ``(id, event)`` until closed: first buffered events after ``last_event_id``,
        then live ones. A ``server.resync`` (id None) comes first when ``last_event_id`` cannot
        be replayed from."""
        if self._closed:
            yield None, BusEvent(type=SHUTDOWN)
            return
        subscriber = _Subscriber(self._queue_size)
        self._subscribers.add(subscriber)
        seen = last_event_id or 0
        try:
            if last_event_id:
                reason = self._resync_reason(last_event_id)
                if reason is not None:
                    yield None, BusEvent(type=RESYNC, properties={"reason": reason})
                for item in [item for item in self._buffer if item[0] > last_event_id]:
                    seen = item[0]
                    yield item
            while not (subscriber.closed and subscriber.queue.empty()):
                item = await subscriber.queue.get()
                if item is not _WAKE and item[0] > seen:  # skip what the replay delivered
                    seen = item[0]
                    yield item
        finally:
            self._subscribers.discard(subscriber)

    def _resync_reason(self, last_event_id: int) -> str | None:
        if last_event_id > self._ids.last:
            return "Last-Event-ID was not issued by this server; reload the state you show"
        if last_event_id < self._ids.origin:
            return (
                "Last-Event-ID is from before the server restarted; events since then are "
                "lost, reload the state you show"
            )
        if last_event_id < self._evicted:
            return (
                "Last-Event-ID is older than the replay buffer; events were missed, reload the "
                "state you show"
            )
        return None

    def close(self) -> None:
        """End every subscription (server shutdown), each with a final ``server.shutdown``."""
        if self._closed:
            return
        self.publish(SHUTDOWN)
        self._closed = True
        for subscriber in list(self._subscribers):
            self._subscribers.discard(subscriber)
            subscriber.close()
