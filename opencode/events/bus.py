"""In-process event bus behind ``GET /event``: fan-out to subscribers plus a replay buffer.

Publishing never blocks: a subscriber whose queue is full is dropped (its stream ends) and can
reconnect with ``Last-Event-ID`` to replay what it missed from the buffer. Ids come from an
``EventIds`` clock, so they only grow across restarts too; a ``Last-Event-ID`` the buffer cannot
replay from (too old, from before a restart, or from the future) gets a ``server.resync`` first.
At shutdown every subscriber gets a final ``server.shutdown`` event before its stream ends.

Each event about a session belongs to the session's owner, and a subscriber with a ``viewer``
receives only that user's events (and the ``server.*`` ones). Owners are learned through
``own``, which the session service calls whenever it creates a session or checks access to one;
an event whose session's owner is not known goes only to subscribers that see everyone.
"""

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from typing import Any

from opencode.core.ids import EventIds
from opencode.schemas.events import BusEvent

log = logging.getLogger(__name__)

_WAKE = object()  # unblocks a subscriber waiting on an empty queue when it is closed
SHUTDOWN = "server.shutdown"
RESYNC = "server.resync"
EVERYONE = "*"  # the owner of server events: every subscriber receives them
OWNERS_KEPT = 100_000  # sessions whose owner is remembered (least recently used ones go)

Item = tuple[int, BusEvent, str | None]


def _visible(owner: str | None, viewer: str | None) -> bool:
    return viewer is None or owner in (EVERYONE, viewer)


class _Subscriber:
    def __init__(self, size: int, viewer: str | None) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(size)
        self.viewer = viewer
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
        self._buffer: deque[Item] = deque(maxlen=replay_size)
        self._owners: OrderedDict[str, str | None] = OrderedDict()
        self._evicted = 0  # id of the newest event no longer in the buffer
        self._subscribers: set[_Subscriber] = set()
        self._queue_size = queue_size
        self._closed = False

    def own(self, session_id: str, user_id: str | None) -> None:
        """Remember who owns ``session_id``: its events go to that user's subscribers."""
        self._owners[session_id] = user_id
        self._owners.move_to_end(session_id)
        if len(self._owners) > OWNERS_KEPT:
            self._owners.popitem(last=False)

    def publish(self, type: str, **properties: Any) -> int:
        event_id = self._ids.next()
        owner = self._owner_of(type, properties)
        item = (event_id, BusEvent(type=type, properties=properties), owner)
        if len(self._buffer) == self._buffer.maxlen:
            self._evicted = self._buffer[0][0]
        self._buffer.append(item)
        for subscriber in list(self._subscribers):
            if not _visible(owner, subscriber.viewer):
                continue  # another user's: never queued, so it cannot slow this stream down
            try:
                subscriber.queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning("event bus subscriber is too slow; closing its stream")
                self._subscribers.discard(subscriber)
                subscriber.close()
        return event_id

    def _owner_of(self, type: str, properties: dict[str, Any]) -> str | None:
        session_id = properties.get("session_id")
        if session_id is None and type.startswith("session."):
            session_id = properties.get("id")  # session.created/updated/deleted name it ``id``
        if session_id is None:
            return EVERYONE if type.startswith("server.") else None
        return self._owners.get(session_id)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def subscribe(
        self, last_event_id: int | None = None, *, viewer: str | None = None
    ) -> AsyncIterator[tuple[int | None, BusEvent]]:
        """Yield ``(id, event)`` until closed: first buffered events after ``last_event_id``,
        then live ones; with ``viewer``, only that user's. A ``server.resync`` (id None) comes
        first when ``last_event_id`` cannot be replayed from."""
        if self._closed:
            yield None, BusEvent(type=SHUTDOWN)
            return
        subscriber = _Subscriber(self._queue_size, viewer)
        self._subscribers.add(subscriber)
        seen = last_event_id or 0
        try:
            if last_event_id:
                reason = self._resync_reason(last_event_id)
                if reason is not None:
                    yield None, BusEvent(type=RESYNC, properties={"reason": reason})
                for event_id, event, owner in [i for i in self._buffer if i[0] > last_event_id]:
                    seen = event_id
                    if _visible(owner, viewer):
                        yield event_id, event
            while not (subscriber.closed and subscriber.queue.empty()):
                item = await subscriber.queue.get()
                if item is _WAKE or item[0] <= seen:  # skip what the replay delivered
                    continue
                event_id, event, _ = item
                seen = event_id
                yield event_id, event
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
