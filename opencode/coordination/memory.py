"""One process's coordination, in memory: today's behaviour, nothing to install.

The same contract as the Redis implementations (``tests/coordination``), including lease
expiry on the monotonic clock, so code written against it keeps working when several
processes share a Redis. Every "other process" is this one.
"""

import asyncio
import bisect
import json
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

from opencode.coordination.base import (
    Answers,
    Beat,
    BusEntry,
    Entry,
    Gap,
    Lease,
    LiveRun,
    resume_point,
)
from opencode.core.ids import EventIds, new_id

DEFAULT_TTL_MS = 20_000
SESSIONS_KEPT = 10_000  # ended turn logs kept (the least recently used go first)


@dataclass
class _Held:
    lease: Lease
    expires: float  # monotonic seconds
    abort: bool = False
    answers: dict[str, Answers] = field(default_factory=dict)
    wakes: list[Callable[[], None]] = field(default_factory=list)


class MemoryCoordinator:
    def __init__(self, *, instance_id: str | None = None, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        self._instance_id = instance_id or new_id("inst")
        self._ttl_ms = ttl_ms
        self._held: dict[str, _Held] = {}

    @property
    def instance_id(self) -> str:
        return self._instance_id

    async def claim(self, session_id: str, run_id: str) -> Lease | None:
        if self._current(session_id) is not None:
            return None
        token = f"{run_id}|{self._instance_id}|{new_id('lease')}"
        lease = Lease(session_id, run_id, self._instance_id, token, self._ttl_ms)
        self._held[session_id] = _Held(lease, self._deadline(lease))
        return lease

    async def renew(self, lease: Lease) -> Beat | None:
        held = self._held.get(lease.session_id)
        if held is None or held.lease.token != lease.token:
            if self._current(lease.session_id) is not None:
                return None
            held = self._held[lease.session_id] = _Held(lease, 0.0)  # re-assert, as Redis does
        held.expires = self._deadline(lease)
        return Beat(abort_requested=held.abort, answers=dict(held.answers))

    async def release(self, lease: Lease) -> bool:
        held = self._held.get(lease.session_id)
        if held is None or held.lease.token != lease.token:
            return False
        del self._held[lease.session_id]
        return True

    async def request_abort(self, session_id: str, run_id: str) -> bool:
        held = self._live(session_id, run_id)
        if held is None:
            return False
        held.abort = True
        _wake(held)
        return True

    async def deliver_answer(
        self, session_id: str, run_id: str, question_id: str, answers: Answers
    ) -> bool:
        held = self._live(session_id, run_id)
        if held is None or question_id in held.answers:
            return False
        held.answers[question_id] = json.loads(json.dumps(answers))  # a copy, as over the wire
        _wake(held)
        return True

    def watch(self, lease: Lease, wake: Callable[[], None]) -> Callable[[], None]:
        held = self._held.get(lease.session_id)
        if held is None or held.lease.token != lease.token:
            return lambda: None  # nothing to wake: the next renew reports the loss
        held.wakes.append(wake)
        return lambda: held.wakes.remove(wake) if wake in held.wakes else None

    async def live_runs(self) -> list[LiveRun]:
        return [
            LiveRun(sid, held.lease.run_id, held.lease.instance_id)
            for sid in list(self._held)
            if (held := self._current(sid)) is not None
        ]

    async def is_live(self, session_id: str, run_id: str) -> bool:
        return self._live(session_id, run_id) is not None

    async def aclose(self) -> None:
        self._held.clear()

    def _current(self, session_id: str) -> _Held | None:
        held = self._held.get(session_id)
        if held is not None and held.expires <= time.monotonic():
            del self._held[session_id]  # lapsed: the key would have expired in Redis
            return None
        return held

    def _live(self, session_id: str, run_id: str) -> _Held | None:
        held = self._current(session_id)
        return held if held is not None and held.lease.run_id == run_id else None

    def _deadline(self, lease: Lease) -> float:
        return time.monotonic() + lease.ttl_ms / 1000


def _wake(held: _Held) -> None:
    for wake in list(held.wakes):
        wake()


class _Signal:
    """Wakes every follower at once: they wait on the current future, which each change
    resolves and replaces."""

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def changed(self) -> asyncio.Future[None]:
        if self._future is None or self._future.done():
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    def fire(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


@dataclass
class _TurnLog:
    entries: list[Entry] = field(default_factory=list)
    turn_start: int | None = None
    open: bool = False
    signal: _Signal = field(default_factory=_Signal)


class MemoryEventLog:
    def __init__(self, *, bus_maxlen: int = 10_000, ids: EventIds | None = None) -> None:
        self._ids = ids or EventIds()
        self._logs: OrderedDict[str, _TurnLog] = OrderedDict()
        self._bus: deque[BusEntry] = deque(maxlen=bus_maxlen)
        self._bus_signal = _Signal()

    async def append(self, session_id: str, data: bytes | str, *, final: bool = False) -> int:
        log = self._log(session_id)
        event_id = self._ids.next()
        if not log.open:  # a new turn: keep the previous one for late reconnects (§1)
            if log.turn_start is not None:
                log.entries = [e for e in log.entries if e.id >= log.turn_start]
            log.turn_start, log.open = event_id, True
        raw = data.encode() if isinstance(data, str) else bytes(data)
        log.entries.append(Entry(event_id, raw, final))
        log.open = not final
        log.signal.fire()
        self._forget_ended()
        return event_id

    async def read(self, session_id: str, after_id: int = 0, *, limit: int = 500) -> list[Entry]:
        log = self._logs.get(session_id)
        entries = log.entries if log is not None else []
        return [e for e in entries if e.id > after_id][:limit]

    async def follow(
        self, session_id: str, after_id: int | None = None
    ) -> AsyncIterator[Entry | Gap]:
        log = self._log(session_id)
        oldest = log.entries[0].id if log.entries else None
        newest = log.entries[-1].id if log.entries else None
        # Never issued: the current turn, from its start.
        default = (log.turn_start or 1) - 1
        gap, cursor = resume_point(after_id, oldest, newest, default=default)
        if gap is not None:
            yield gap
        while True:
            changed = log.signal.changed()
            fresh = log.entries[bisect.bisect_right(log.entries, cursor, key=_entry_id) :]
            for entry in fresh:
                cursor = entry.id
                yield entry
                if entry.final:
                    return
            if not fresh:
                await changed

    async def turn_start(self, session_id: str) -> int | None:
        log = self._logs.get(session_id)
        return log.turn_start if log is not None else None

    async def publish(
        self,
        type: str,
        properties: Mapping[str, Any],
        *,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> int:
        event_id = self._ids.next()
        self._bus.append(BusEntry(event_id, type, dict(properties), owner, session_id))
        self._bus_signal.fire()
        return event_id

    async def subscribe(self, after_id: int | None = None) -> AsyncIterator[BusEntry | Gap]:
        oldest = self._bus[0].id if self._bus else None
        newest = self._bus[-1].id if self._bus else 0
        # Never issued: only new events.
        gap, cursor = resume_point(after_id, oldest, newest or None, default=newest)
        if gap is not None:
            yield gap
        while True:
            changed = self._bus_signal.changed()
            fresh = _newer(self._bus, cursor)
            for entry in fresh:
                cursor = entry.id
                yield entry
            if not fresh:
                await changed

    async def aclose(self) -> None:
        self._logs.clear()
        self._bus.clear()

    def _log(self, session_id: str) -> _TurnLog:
        log = self._logs.get(session_id)
        if log is None:
            log = self._logs[session_id] = _TurnLog()
        self._logs.move_to_end(session_id)
        return log

    def _forget_ended(self) -> None:
        excess = len(self._logs) - SESSIONS_KEPT
        if excess > 0:  # the least recently used ended logs; a running turn is never dropped
            for session_id in [sid for sid, log in self._logs.items() if not log.open][:excess]:
                del self._logs[session_id]


def _newer(bus: deque[BusEntry], cursor: int) -> list[BusEntry]:
    """The bus entries after ``cursor``, read from the newest end: O(new), not O(buffer)."""
    return list(takewhile(lambda e: e.id > cursor, reversed(bus)))[::-1]


def _entry_id(entry: Entry) -> int:
    return entry.id
