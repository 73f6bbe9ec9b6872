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

_CLOSED = object()


class EventBus:
    def __init__(self, *, replay_size: int = 1000, queue_size: int = 2000) -> None:
        self._ids = itertools.count(1)
        self._buffer: deque[tuple[int, BusEvent]] = deque(maxlen=replay_size)
        self._subscribers: set[asyncio.Queue] = set()
        self._queue_size = queue_size

    def publish(self, type: str, **properties: Any) -> int:
        event_id = next(self._ids)
        item = (event_id, BusEvent(type=type, properties=properties))
        self._buffer.append(item)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning("event bus subscriber is too slow; dropping it")
                self._subscribers.discard(queue)
                queue.get_nowait()  # make room for the close marker
                queue.put_nowait(_CLOSED)
        return event_id

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def subscribe(
        self, last_event_id: int | None = None
    ) -> AsyncIterator[tuple[int, BusEvent]]:
        """Yield ``(id, event)`` forever: first buffered events after ``last_event_id``, then live."""
        queue: asyncio.Queue = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        seen = last_event_id or 0
        try:
            if last_event_id is not None:
                for item in [item for item in self._buffer if item[0] > last_event_id]:
                    seen = item[0]
                    yield item
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    return
                if item[0] > seen:  # skip what the replay already delivered
                    seen = item[0]
                    yield item
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """End every subscription (server shutdown)."""
        for queue in list(self._subscribers):
            self._subscribers.discard(queue)
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(_CLOSED)
