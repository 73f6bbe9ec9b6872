"""The storage contract: records (frozen dataclasses) and the ``Store`` protocol.

Every backend (SQLite now, Postgres/Supabase later) implements ``Store`` and passes the same
contract suite in ``tests/storage``. Records carry plain JSON-able values (parts, usage and
todos are dicts) so storage knows nothing about the wire schemas or the LLM layer.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol

MessageStatus = Literal["running", "completed", "aborted", "error"]
QuestionStatus = Literal["pending", "answered", "rejected", "expired"]
CompactionStatus = Literal["running", "completed", "failed"]
CompactionTrigger = Literal["messages", "tokens", "manual"]
Order = Literal["asc", "desc"]

USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


def given(**fields: Any) -> dict[str, Any]:
    """The fields a partial update sets: those not None."""
    return {name: value for name, value in fields.items() if value is not None}


def empty_usage() -> dict[str, int]:
    return dict.fromkeys(USAGE_KEYS, 0)


@dataclass(frozen=True)
class SessionRecord:
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    model: str | None = None  # "provider/model" chosen for this session, if any
    message_count: int = 0
    total_cost: float = 0.0
    usage: dict[str, int] = field(default_factory=empty_usage)
    user_id: str | None = None  # the owner (a UUID); None only for rows no server wrote


@dataclass(frozen=True)
class MessageRecord:
    id: str
    session_id: str
    role: Literal["user", "assistant"]
    created_at: datetime
    updated_at: datetime
    status: MessageStatus
    parts: list[dict[str, Any]]
    content: str = ""
    parent_id: str | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=empty_usage)
    cost: float = 0.0
    error: str | None = None
    seq: int = 0  # 1-based position in the session, assigned by the store


@dataclass(frozen=True)
class PartsPatch:
    """A message's parts relative to what the store holds, so a write carries only what changed.

    Applied in order: append ``append_text`` to the text of stored part ``keep - 1``, drop the
    ``drop`` stored parts after the first ``keep``, then add ``tail``; ``content_append`` is
    appended to ``content``. A growing reply is written as the text it gained, so the cost of a
    write follows what is new, not the length of the message (``apply_patch`` is the reference).
    """

    keep: int
    drop: int = 0
    append_text: str = ""
    tail: tuple[dict[str, Any], ...] = ()
    content_append: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.drop or self.append_text or self.tail or self.content_append)


def apply_patch(
    parts: list[dict[str, Any]], content: str, patch: PartsPatch
) -> tuple[list[dict[str, Any]], str]:
    """The parts and content after ``patch``: what every backend must store."""
    out = [dict(part) for part in parts[: patch.keep]]
    if patch.append_text:
        out[-1]["text"] = out[-1]["text"] + patch.append_text
    out += [dict(part) for part in parts[patch.keep + patch.drop :]]
    out += [dict(part) for part in patch.tail]
    return out, content + patch.content_append


@dataclass(frozen=True)
class StepUsage:
    """One model step's usage, added to the session totals in the write that stores the step."""

    model: str
    usage: dict[str, int]
    cost: float


@dataclass(frozen=True)
class DraftWrite:
    """One ``write_draft`` call, for ``write_drafts``: the same arguments."""

    session_id: str
    message_id: str
    patch: PartsPatch
    usage: dict[str, int]
    cost: float
    status: MessageStatus | None = None
    error: str | None = None
    step: StepUsage | None = None


@dataclass(frozen=True)
class ModelUsageRecord:
    model: str
    cost: float
    steps: int
    usage: dict[str, int]


@dataclass(frozen=True)
class QuestionRecord:
    id: str
    session_id: str
    message_id: str
    call_id: str
    questions: list[dict[str, Any]]
    created_at: datetime
    status: QuestionStatus = "pending"
    answers: list[list[str]] | None = None


@dataclass(frozen=True)
class CompactionRecord:
    """A session's compaction state: the latest attempt, and the latest summary in force.

    ``summary_message_id`` and ``folded_through_seq`` name the last *successful* compaction
    (a failed attempt leaves them as they were): the model sees that summary, then every
    message with a higher ``seq``."""

    session_id: str
    status: CompactionStatus
    trigger: CompactionTrigger
    started_at: datetime
    finished_at: datetime | None = None
    messages_folded: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    error: str | None = None
    summary_message_id: str | None = None
    folded_through_seq: int = 0
    compactions: int = 0  # successful compactions so far


# A reservation whose step never settled (its process died) stops counting this long after the
# user's latest reservation, so a crash cannot hold a user's quota until midnight.
RESERVATION_TTL = timedelta(minutes=15)


@dataclass(frozen=True)
class QuotaDecision:
    """What ``reserve_tokens`` decided, with the day's figures as they stood after it."""

    allowed: bool
    used: int  # tokens settled today (input + output)
    reserved: int  # tokens reserved by steps still running (this one included when allowed)
    limit: int  # the limit that applied: the user's override, else the default; 0 = unlimited


@dataclass(frozen=True)
class DailyModelUsage:
    model: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    requests: int


@dataclass(frozen=True)
class DailyUsage:
    """One user's settled usage for one UTC day; zeros for a day with none."""

    day: date
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reserved: int = 0  # live reservations only (stale ones, per RESERVATION_TTL, count 0)
    cost: float = 0.0
    requests: int = 0
    by_model: tuple[DailyModelUsage, ...] = ()  # largest total first, then by model name


@dataclass(frozen=True)
class SessionBundle:
    """Everything a store holds for one session, as stored: what ``export_session`` reads and
    ``import_session`` writes back verbatim (totals, ``seq`` and timestamps included), so a
    session moves between backends unchanged."""

    session: SessionRecord  # with its message_count, total_cost and usage
    messages: tuple[MessageRecord, ...]  # in seq order, seq 1..message_count
    todos: tuple[dict[str, Any], ...]
    questions: tuple[QuestionRecord, ...]  # every status, oldest first
    compaction: CompactionRecord | None
    model_usage: tuple[ModelUsageRecord, ...]  # in the order the models were first used


class Store(Protocol):
    async def initialize(self) -> None:
        """Open connections and create or migrate the schema."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """Whether the store answers a trivial query now (``GET /health``); never raises."""

    # sessions
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        """Insert; ``message_count``, ``total_cost`` and ``usage`` start at zero whatever the
        record says (the store owns them). Returns the stored record."""

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def list_sessions(
        self, *, limit: int, offset: int, user_id: str | None = None
    ) -> tuple[list[SessionRecord], int]:
        """Newest first (by ``updated_at``, then id); returns the page and the total count.
        With ``user_id``, only that owner's sessions (and their count). O(page) on an index."""

    async def update_session(
        self, session_id: str, *, title: str | None = None, model: str | None = None
    ) -> SessionRecord | None:
        """Set the given fields and ``updated_at``; None if the session does not exist."""

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session with its messages, todos, questions and usage rows."""

    # messages
    async def add_message(self, message: MessageRecord) -> MessageRecord:
        """Insert, assigning ``seq`` = previous count + 1, bumping the session's
        ``message_count`` and ``updated_at`` in the same transaction. Returns the stored record.
        Raises KeyError if the session does not exist."""

    async def update_message(
        self,
        message_id: str,
        *,
        status: MessageStatus | None = None,
        parts: list[dict[str, Any]] | None = None,
        content: str | None = None,
        model: str | None = None,
        usage: dict[str, int] | None = None,
        cost: float | None = None,
        error: str | None = None,
    ) -> MessageRecord | None: ...

    async def write_draft(
        self,
        session_id: str,
        message_id: str,
        patch: PartsPatch,
        *,
        usage: dict[str, int],
        cost: float,
        status: MessageStatus | None = None,
        error: str | None = None,
        step: StepUsage | None = None,
    ) -> bool:
        """Apply ``patch`` to a message being generated and set its usage and cost (and status
        and error, when given); with ``step``, add that step's usage to the session's totals in
        the same transaction. False if the message does not exist (nothing is written then)."""

    async def write_drafts(self, writes: Sequence[DraftWrite]) -> list[bool]:
        """Several ``write_draft`` calls (of different messages) in one transaction: all of
        them are stored or, if this raises, none. One result per write, in order."""

    async def get_message(self, message_id: str) -> MessageRecord | None: ...

    async def list_messages(
        self, session_id: str, *, limit: int | None, offset: int, order: Order
    ) -> tuple[list[MessageRecord], int]:
        """One page in ``seq`` order and the session's total message count. O(page).
        ``limit=None`` runs to the end; an unknown session gives ``([], 0)``; a negative
        ``limit`` or ``offset`` raises ValueError (as it does for ``list_sessions``)."""

    # usage and cost
    async def record_step_usage(
        self, session_id: str, *, model: str, usage: dict[str, int], cost: float
    ) -> None:
        """Add one step's usage and cost to the session totals and its per-model row,
        in one transaction (totals are sums in the order steps finished).
        Raises KeyError if the session does not exist."""

    async def model_usage(self, session_id: str) -> list[ModelUsageRecord]:
        """One row per model, in the order the models were first used."""

    # todos
    async def get_todos(self, session_id: str) -> list[dict[str, Any]]: ...

    async def set_todos(self, session_id: str, todos: list[dict[str, Any]]) -> None:
        """Replace the session's list. Raises KeyError if the session does not exist."""

    # questions
    async def add_question(self, question: QuestionRecord) -> None:
        """Raises KeyError if the question's session does not exist."""

    async def get_question(self, question_id: str) -> QuestionRecord | None: ...

    async def list_questions(
        self, *, session_id: str | None = None, user_id: str | None = None
    ) -> list[QuestionRecord]:
        """Pending questions, oldest first; with ``user_id``, only in that owner's sessions."""

    async def resolve_question(
        self,
        question_id: str,
        *,
        status: QuestionStatus,
        answers: list[list[str]] | None = None,
    ) -> bool:
        """Move a pending question to ``status``; False if it was not pending.
        Raises ValueError if ``status`` is ``"pending"``."""

    # compaction
    async def get_compaction(self, session_id: str) -> CompactionRecord | None: ...

    async def save_compaction(self, record: CompactionRecord) -> None:
        """Insert or replace the session's compaction state.
        Raises KeyError if the session does not exist."""

    # daily token quotas (one row per user and UTC day; race-free across processes)
    async def reserve_tokens(
        self, user_id: str, day: date, tokens: int, *, default_limit: int
    ) -> QuotaDecision:
        """Before a model call, in one atomic statement or function: allowed when the limit
        (the user's ``user_limits`` override, else ``default_limit``; 0 = unlimited) is 0 or
        ``used + live reservations < limit``; when allowed, add ``tokens`` to the reservations.
        Never a read in Python followed by a write."""

    async def settle_tokens(
        self,
        user_id: str,
        day: date,
        *,
        reserved: int,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost: float,
    ) -> None:
        """After a model call, atomically: release ``reserved`` (never below 0), add the
        call's tokens and cost to the day's totals and to its per-model row, count a request.
        ``reserved=0`` records a call that reserved nothing."""

    async def daily_usage(self, user_id: str, day: date) -> DailyUsage: ...

    async def get_user_limit(self, user_id: str) -> int | None:
        """The user's daily token limit override; None when the default applies."""

    async def set_user_limit(self, user_id: str, limit: int | None) -> None:
        """Set (or with None remove) the user's override; 0 means unlimited."""

    # recovery after a crash
    async def fail_running_messages(self, error: str) -> list[MessageRecord]:
        """Mark every ``running`` message ``error`` (with ``error``) and return them."""

    async def expire_pending_questions(self) -> int: ...

    async def fail_running_compactions(self, error: str) -> int:
        """Mark every ``running`` compaction ``failed`` with ``error``; return how many."""

    # moving sessions between stores (``python -m opencode.storage.copy``)
    async def export_session(self, session_id: str) -> SessionBundle | None:
        """The session and everything it owns, read in one snapshot; None if it does not
        exist."""

    async def import_session(self, bundle: SessionBundle) -> bool:
        """Write ``bundle`` as it is (totals, seq and timestamps unchanged), in one
        transaction; False, writing nothing, if a session with its id already exists."""
