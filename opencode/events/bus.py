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
from opencode.events.sse import encode
from opencode.schemas.events import BusEvent

log = logging.getLogger(__name__)

SHUTDOWN = "server.shutdown"
RESYNC = "server.resync"
EVERYONE = "*"  # the owner of server events: every subscriber receives them
OWNERS_KEPT = 100_000  # sessions whose owner is remembered (least recently used ones go)


class _Item:
    """One published event. Its SSE frame is encoded once, on first use, and shared by every
    subscriber that receives it: an event nobody wants is never serialised."""

    __slots__ = ("event", "event_id", "owner", "session_id", "_frame")

    def __init__(
        self, event_id: int | None, event: BusEvent, owner: str | None, session_id: str | None
    ) -> None:
        self.event_id = event_id
        self.event = event
        self.owner = owner
        self.session_id = session_id
        self._frame: bytes | None = None

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = encode(self.event_id, self.event)
        return self._frame


def _visible(item: _Item, viewer: str | None, session_id: str | None) -> bool:
    if item.owner == EVERYONE:
        return True
    if session_id is not None and item.session_id != session_id:
        return False
    return viewer is None or item.owner == viewer


class _Subscriber:
    """What one stream has not written yet. ``take`` hands over all of it at once, so a stream
    that fell behind catches up in one write, and a burst of events wakes it once."""

    __slots__ = ("closed", "pending", "session_id", "size", "viewer", "_waiter")

    def __init__(self, size: int, viewer: str | None, session_id: str | None) -> None:
        self.pending: deque[_Item] = deque()
        self.size = size
        self.viewer = viewer
        self.session_id = session_id
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, item: _Item) -> bool:
        """Queue ``item``; False if the queue is full (the subscriber is too slow)."""
        if len(self.pending) >= self.size:
            return False
        self.pending.append(item)
        self._wake()
        return True

    async def take(self) -> list[_Item]:
        """Everything queued, waiting for something first; [] once closed and empty."""
        while not self.pending and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        taken = list(self.pending)
        self.pending.clear()
        return taken

    def close(self) -> None:
        """Stop after what is queued: delivered events stay contiguous, so a reconnect with
        the last id seen replays exactly what was missed."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventBus:
    def __init__(
        self, *, replay_size: int = 1000, queue_size: int = 2000, ids: EventIds | None = None
    ) -> None:
        self._ids = ids or EventIds()
        self._buffer: deque[_Item] = deque(maxlen=replay_size)
        self._owners: OrderedDict[str, str | None] = OrderedDict()
        self._evicted = 0  # id of the newest event no longer in the buffer
        self._subscribers: set[_Subscriber] = set()  # of every session
        self._watching: dict[str, set[_Subscriber]] = {}  # of one session each
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
        session_id = _session_of(type, properties)
        owner = self._owner_of(type, session_id)
        item = _Item(event_id, BusEvent(type=type, properties=properties), owner, session_id)
        if len(self._buffer) == self._buffer.maxlen:
            self._evicted = self._buffer[0].event_id or 0
        self._buffer.append(item)
        if owner == EVERYONE:
            targets = [*self._subscribers, *(s for w in self._watching.values() for s in w)]
        else:
            # Only who may see it is even looked at: another user's or another session's
            # events are never queued, so they cannot slow this stream down.
            watching = self._watching.get(session_id) if session_id is not None else None
            targets = [*self._subscribers, *(watching or ())]
        for subscriber in targets:
            if subscriber.viewer is not None and owner != EVERYONE and owner != subscriber.viewer:
                continue
            if not subscriber.offer(item):
                log.warning("event bus subscriber is too slow; closing its stream")
                self._remove(subscriber)
                subscriber.close()
        return event_id

    def _owner_of(self, type: str, session_id: str | None) -> str | None:
        if session_id is None:
            return EVERYONE if type.startswith("server.") else None
        return self._owners.get(session_id)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers) + sum(len(w) for w in self._watching.values())

    async def subscribe(
        self,
        last_event_id: int | None = None,
        *,
        viewer: str | None = None,
        session_id: str | None = None,
    ) -> AsyncIterator[tuple[int | None, BusEvent]]:
        """Yield ``(id, event)`` until closed: first buffered events after ``last_event_id``,
        then live ones; with ``viewer``, only that user's; with ``session_id``, only that
        session's (and the ``server.*`` ones). A ``server.resync`` (id None) comes first when
        ``last_event_id`` cannot be replayed from."""
        async for batch in self._batches(last_event_id, viewer, session_id):
            for item in batch:
                yield item.event_id, item.event

    async def frames(
        self,
        last_event_id: int | None = None,
        *,
        viewer: str | None = None,
        session_id: str | None = None,
    ) -> AsyncIterator[bytes]:
        """``subscribe`` as SSE bytes: each event encoded once for all its subscribers, and
        everything a stream has not written yet joined into one write."""
        async for batch in self._batches(last_event_id, viewer, session_id):
            yield b"".join(item.frame() for item in batch)

    async def _batches(
        self, last_event_id: int | None, viewer: str | None, session_id: str | None
    ) -> AsyncIterator[list[_Item]]:
        if self._closed:
            yield [_Item(None, BusEvent(type=SHUTDOWN), EVERYONE, None)]
            return
        subscriber = _Subscriber(self._queue_size, viewer, session_id)
        self._add(subscriber)
        seen = last_event_id or 0
        try:
            if last_event_id:
                replay: list[_Item] = []
                reason = self._resync_reason(last_event_id)
                if reason is not None:
                    event = BusEvent(type=RESYNC, properties={"reason": reason})
                    replay.append(_Item(None, event, EVERYONE, None))
                for item in [i for i in self._buffer if i.event_id > last_event_id]:
                    seen = item.event_id or seen
                    if _visible(item, viewer, session_id):
                        replay.append(item)
                if replay:
                    yield replay
            while batch := await subscriber.take():
                fresh = [item for item in batch if (item.event_id or 0) > seen]  # not replayed
                if fresh:
                    seen = fresh[-1].event_id or seen
                    yield fresh
        finally:
            self._remove(subscriber)

    def _add(self, subscriber: _Subscriber) -> None:
        if subscriber.session_id is None:
            self._subscribers.add(subscriber)
        else:
            self._watching.setdefault(subscriber.session_id, set()).add(subscriber)

    def _remove(self, subscriber: _Subscriber) -> None:
        if subscriber.session_id is None:
            self._subscribers.discard(subscriber)
            return
        watching = self._watching.get(subscriber.session_id)
        if watching is not None:
            watching.discard(subscriber)
            if not watching:
                del self._watching[subscriber.session_id]

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
        everyone = [*self._subscribers, *(s for w in self._watching.values() for s in w)]
        self._subscribers.clear()
        self._watching.clear()
        for subscriber in everyone:
            subscriber.close()


def _session_of(type: str, properties: dict[str, Any]) -> str | None:
    session_id = properties.get("session_id")
    if session_id is None and type.startswith("session."):
        session_id = properties.get("id")  # session.created/updated/deleted name it ``id``
    return session_id if isinstance(session_id, str) else None
