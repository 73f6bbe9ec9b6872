"""The two seams several processes must agree on (STYLE habit 16): who owns a running turn
(``Coordinator``) and the ordered event logs followers read (``EventLog``).

Both come in memory (one process, today's behaviour) and Redis (``run-coordination.md`` §1)
flavours that pass one contract suite (``tests/coordination``). The records are frozen
dataclasses; nothing here knows about HTTP, the store or the event schema.

Event ids are ints because the public ``Last-Event-ID`` is an int today. Both logs issue them
the way ``opencode.core.ids.EventIds`` does: the clock in microseconds (Redis's clock for the
Redis logs), bumped past the last id of that log when events come faster. So ids only grow per
session across turns, owners and restarts, stay below 2**53 (JavaScript-exact), and an id held
from before a restart is smaller than anything issued after it. (The note's ``{epoch}-{seq}``
ids need the PostgreSQL epoch and a ``str`` header; that can come with the wiring, §3.)
"""

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Answers = list[list[str]]  # what ``QuestionBroker.ask`` resolves to: one list per question


@dataclass(frozen=True)
class Lease:
    """A session held for one run. ``token`` is what renew and release compare, so a holder
    whose lease expired and was claimed again cannot touch the newer one (§4 pitfall 4)."""

    session_id: str
    run_id: str
    instance_id: str
    token: str
    ttl_ms: int


@dataclass(frozen=True)
class Beat:
    """What a successful renew learned from the durable records (§1 heartbeat): an abort is
    pending for this run, and the answers delivered so far, by question id."""

    abort_requested: bool = False
    answers: Mapping[str, Answers] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveRun:
    session_id: str
    run_id: str
    instance_id: str


@dataclass(frozen=True)
class Entry:
    """One event of a session's turn log; ``final`` marks the turn's last event."""

    id: int
    data: bytes
    final: bool = False


@dataclass(frozen=True)
class BusEntry:
    """One event of the global ``/event`` bus, with what the app filters on (viewer, session)."""

    id: int
    type: str
    properties: Mapping[str, Any]
    owner: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Gap:
    """Yielded first by ``follow``/``subscribe`` when ``after_id`` cannot be resumed from: it
    is older than what is retained (trimmed, expired, Redis lost its data) or was never issued
    by this log. The app turns it into a resync event (§2 slow SSE consumer); the stream then
    goes on from what is retained. ``oldest_id`` is None when the log holds nothing."""

    after_id: int
    oldest_id: int | None


class Coordinator(Protocol):
    """Who owns a running turn, and how other processes reach the owner (§1).

    Durable record first, wake-up second: ``request_abort`` and ``deliver_answer`` write a
    record that ``renew`` reports, and only then wake the owner (``watch``). An owner that
    misses a wake-up learns it on its next heartbeat, so a lost signal costs latency only.
    """

    @property
    def instance_id(self) -> str: ...

    async def claim(self, session_id: str, run_id: str) -> Lease | None:
        """Hold the session for ``run_id`` (``SET NX PX``); None when another run holds it."""
        ...

    async def renew(self, lease: Lease) -> Beat | None:
        """Extend the lease (the owner's heartbeat); None means it is lost: another run holds
        the session now. A lease that merely lapsed with nobody else claiming is re-asserted
        (§1 heartbeat: it survives a Redis restart)."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Drop the lease if it is still this one (token compared atomically)."""
        ...

    async def request_abort(self, session_id: str, run_id: str) -> bool:
        """Ask the owner of ``run_id`` to stop; False (and nothing done) unless ``run_id`` is
        the session's live run, so an abort never reaches a newer turn (§4 pitfall 3)."""
        ...

    async def deliver_answer(
        self, session_id: str, run_id: str, question_id: str, answers: Answers
    ) -> bool:
        """Hand the answers to the live run; False if ``run_id`` is not live or the question
        was already answered (one winner)."""
        ...

    def watch(self, lease: Lease, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` soon after an abort or answer is recorded for this lease (a hint:
        the owner re-checks with ``renew``); returns the function that stops watching."""
        ...

    async def live_runs(self) -> list[LiveRun]: ...

    async def is_live(self, session_id: str, run_id: str) -> bool:
        """Whether ``run_id`` still holds its lease. Recovery marks a run interrupted only
        when this is False (and, with a shared database, its heartbeat is stale: §2)."""
        ...

    async def aclose(self) -> None: ...


class EventLog(Protocol):
    """A session's turn log and the global bus, ordered, with replay and live follow from one
    primitive (§3: no pub/sub spliced onto a replay buffer)."""

    async def append(self, session_id: str, data: bytes | str, *, final: bool = False) -> int:
        """Add an event to the session's log and return its id. The first append after a
        final event starts a new turn, which trims the log to the previous turn and this one."""
        ...

    async def read(self, session_id: str, after_id: int = 0, *, limit: int = 500) -> list[Entry]:
        """Retained events with ids above ``after_id``, oldest first."""
        ...

    def follow(self, session_id: str, after_id: int | None = None) -> AsyncIterator[Entry | Gap]:
        """Events after ``after_id`` (None: from the start of the current or last turn), then
        live ones, up to and including the next final event; a ``Gap`` first if ``after_id``
        cannot be resumed from."""
        ...

    async def turn_start(self, session_id: str) -> int | None:
        """Id of the first event of the session's current (or last) turn."""
        ...

    async def publish(
        self,
        type: str,
        properties: Mapping[str, Any],
        *,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Add an event to the global bus (bounded: the oldest go first) and return its id."""
        ...

    def subscribe(self, after_id: int | None = None) -> AsyncIterator[BusEntry | Gap]:
        """Bus events after ``after_id`` (None: only new ones), then live ones, until the
        caller stops; a ``Gap`` first if ``after_id`` cannot be resumed from."""
        ...

    async def aclose(self) -> None: ...


def gap_for(after_id: int, oldest_id: int | None, newest_id: int | None) -> Gap | None:
    """The one resume rule of both logs: an id older than the oldest retained event (events
    after it may be gone) or newer than the newest (not issued here) cannot be resumed from.
    A reader whose id is exactly the last trimmed event gets a needless ``Gap``; that costs a
    reload, never a lost event."""
    if after_id <= 0:
        return None
    if oldest_id is None or newest_id is None or not oldest_id <= after_id <= newest_id:
        return Gap(after_id, oldest_id)
    return None


def resume_point(
    after_id: int | None, oldest_id: int | None, newest_id: int | None, *, default: int
) -> tuple[Gap | None, int]:
    """Where a reader asking for events after ``after_id`` starts (``default`` without one),
    and the ``Gap`` to give it first, if any (``gap_for``): after an id too old, everything
    retained after it; after one never issued, from ``default``."""
    if after_id is None:
        return None, default
    gap = gap_for(after_id, oldest_id, newest_id)
    if gap is None:
        return None, after_id
    too_old = oldest_id is not None and after_id < oldest_id
    return gap, after_id if too_old else default
