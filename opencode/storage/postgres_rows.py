"""Rows of the PostgreSQL store to records and back. asyncpg already gives ``timestamptz`` as
aware UTC datetimes, and jsonb as Python values (the codec ``PostgresStore`` registers), so
this is mostly naming columns."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .base import (
    USAGE_KEYS,
    CompactionRecord,
    DraftWrite,
    MessageRecord,
    ModelUsageRecord,
    QuestionRecord,
    SessionRecord,
)

# The column order of each SELECT.
TOKENS = ", ".join(USAGE_KEYS)
SESSION_COLUMNS = (
    f"id, user_id, title, model, created_at, updated_at, message_count, total_cost, {TOKENS}"
)
MESSAGE_COLUMNS = (
    "id, session_id, seq, role, status, parent_id, model, content, parts, usage, cost, error, "
    "created_at, updated_at"
)
QUESTION_COLUMNS = "id, session_id, message_id, call_id, questions, answers, status, created_at"
COMPACTION_COLUMNS = (
    "session_id, status, trigger, started_at, finished_at, messages_folded, tokens_before, "
    "tokens_after, error, summary_message_id, folded_through_seq, compactions"
)

Row = Mapping[str, Any]


def aware(value: datetime) -> datetime:
    """``value`` if it is timezone-aware; asyncpg would silently take a naive one as UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamps must be timezone-aware UTC, got naive {value!r}")
    return value


def usage_from_row(row: Row) -> dict[str, int]:
    return {key: row[key] for key in USAGE_KEYS}


def session_from_row(row: Row) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model=row["model"],
        message_count=row["message_count"],
        total_cost=row["total_cost"],
        usage=usage_from_row(row),
        user_id=owner(row["user_id"]),
    )


def owner(value: object) -> str | None:
    """A ``uuid`` column as the canonical text the records carry (asyncpg gives a UUID)."""
    return None if value is None else str(value)


def message_params(message: MessageRecord) -> tuple[Any, ...]:
    """The arguments of ``public.add_message`` after ``p_id, p_session_id``, up to ``p_now``."""
    return (
        message.role,
        message.status,
        message.parts,
        message.content,
        message.parent_id,
        message.model,
        message.usage,
        message.cost,
        message.error,
        aware(message.created_at),
        aware(message.updated_at),
    )


def message_from_row(row: Row) -> MessageRecord:
    return MessageRecord(
        id=row["id"],
        session_id=row["session_id"],
        role=row["role"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        parts=row["parts"],
        content=row["content"],
        parent_id=row["parent_id"],
        model=row["model"],
        usage=row["usage"],
        cost=row["cost"],
        error=row["error"],
        seq=row["seq"],
    )


def model_usage_from_row(row: Row) -> ModelUsageRecord:
    return ModelUsageRecord(
        model=row["model"], cost=row["cost"], steps=row["steps"], usage=usage_from_row(row)
    )


def question_from_row(row: Row) -> QuestionRecord:
    return QuestionRecord(
        id=row["id"],
        session_id=row["session_id"],
        message_id=row["message_id"],
        call_id=row["call_id"],
        questions=row["questions"],
        created_at=row["created_at"],
        status=row["status"],
        answers=row["answers"],
    )


def compaction_params(record: CompactionRecord) -> tuple[Any, ...]:
    """In ``COMPACTION_COLUMNS`` order."""
    return (
        record.session_id,
        record.status,
        record.trigger,
        aware(record.started_at),
        None if record.finished_at is None else aware(record.finished_at),
        record.messages_folded,
        record.tokens_before,
        record.tokens_after,
        record.error,
        record.summary_message_id,
        record.folded_through_seq,
        record.compactions,
    )


def compaction_from_row(row: Row) -> CompactionRecord:
    return CompactionRecord(
        session_id=row["session_id"],
        status=row["status"],
        trigger=row["trigger"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        messages_folded=row["messages_folded"],
        tokens_before=row["tokens_before"],
        tokens_after=row["tokens_after"],
        error=row["error"],
        summary_message_id=row["summary_message_id"],
        folded_through_seq=row["folded_through_seq"],
        compactions=row["compactions"],
    )


def draft_batch(writes: Sequence[DraftWrite], now: datetime) -> list[dict[str, Any]]:
    """``write_drafts``' argument (supabase/migrations/20261205000000_batched_drafts.sql): one
    object per write with ``write_draft``'s arguments, JSON all the way down."""
    return [
        {
            "session_id": write.session_id,
            "message_id": write.message_id,
            "keep": write.patch.keep,
            "drop": write.patch.drop,
            "append_text": write.patch.append_text,
            "tail": list(write.patch.tail),
            "content_append": write.patch.content_append,
            "usage": write.usage,
            "cost": write.cost,
            "now": now.isoformat(),
            "status": write.status,
            "error": write.error,
            "step_model": None if write.step is None else write.step.model,
            "step_usage": None if write.step is None else write.step.usage,
            "step_cost": None if write.step is None else write.step.cost,
        }
        for write in writes
    ]
