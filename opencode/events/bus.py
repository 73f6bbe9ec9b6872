"""In-process event bus behind ``GET /event``: fan-out to subscribers plus a replay buffer.

Publishing never blocks: a subscriber whose queue is full is dropped (its stream ends) and can
reconnect with ``Last-Event-ID`` to replay what it missed from the buffer.
"""

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from opencode.schemas.events import BusEvent

log = logging.getLogger(__name__)

_WAKE = object()  # unblocks a subscriber waiting on an empty queue when it is closed


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
    def __init__(self, *, replay_size: int = 1000, queue_size: int = 2000) -> None:
        self._ids = itertools.count(1)
        self._buffer: deque[tuple[int, BusEvent]] = deque(maxlen=replay_size)
        self._subscribers: set[_Subscriber] = set()
        self._queue_size = queue_size

    def publish(self, type: str, **properties: Any) -> int:
        event_id = next(self._ids)
        item = (event_id, BusEvent(type=type, properties=properties))
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
    ) -> AsyncIterator[tuple[int, BusEvent]]:
        """Yield ``(id, event)`` until closed: first buffered events after ``last_event_id``,
        then live ones."""
        subscriber = _Subscriber(self._queue_size)
        self._subscribers.add(subscriber)
        seen = last_event_id or 0
        try:
            if last_event_id is not None:
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

    def close(self) -> None:
        """End every subscription (server shutdown)."""
        for subscriber in list(self._subscribers):
            self._subscribers.discard(subscriber)
            subscriber.close()
