"""Rows of the Supabase REST store to records and back. PostgREST renders rows as JSON, so
timestamps arrive as ISO strings (in the database's time zone) and whole floats may arrive as
ints; the column names are the PostgreSQL store's, so its ``*_from_row`` functions do the rest.
"""

from datetime import UTC, datetime
from typing import Any

from .base import CompactionRecord, MessageRecord, QuestionRecord, SessionRecord
from .postgres_rows import (
    Row,
    aware,
    compaction_from_row,
    message_from_row,
    question_from_row,
    session_from_row,
)

TIMESTAMPS = ("created_at", "updated_at", "started_at", "finished_at")
FLOATS = ("total_cost", "cost")


def decoded(row: Row) -> dict[str, Any]:
    """``row`` with its timestamps as aware UTC datetimes and its costs as floats."""
    out = dict(row)
    for name in TIMESTAMPS:
        if isinstance(out.get(name), str):
            out[name] = datetime.fromisoformat(out[name]).astimezone(UTC)
    for name in FLOATS:
        if out.get(name) is not None:
            out[name] = float(out[name])
    return out


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else aware(value).isoformat()


def session(row: Row) -> SessionRecord:
    return session_from_row(decoded(row))


def message(row: Row) -> MessageRecord:
    return message_from_row(decoded(row))


def question(row: Row) -> QuestionRecord:
    return question_from_row(decoded(row))


def compaction(row: Row) -> CompactionRecord:
    return compaction_from_row(decoded(row))


def session_body(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "user_id": record.user_id,
        "title": record.title,
        "model": record.model,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
    }


def add_message_args(record: MessageRecord, now: datetime) -> dict[str, Any]:
    """The named arguments of ``public.add_message``."""
    return {
        "p_id": record.id,
        "p_session_id": record.session_id,
        "p_role": record.role,
        "p_status": record.status,
        "p_parts": record.parts,
        "p_content": record.content,
        "p_parent_id": record.parent_id,
        "p_model": record.model,
        "p_usage": record.usage,
        "p_cost": record.cost,
        "p_error": record.error,
        "p_created_at": timestamp(record.created_at),
        "p_updated_at": timestamp(record.updated_at),
        "p_now": timestamp(now),
    }


def add_question_args(record: QuestionRecord) -> dict[str, Any]:
    """The named arguments of ``public.add_question``."""
    return {
        "p_id": record.id,
        "p_session_id": record.session_id,
        "p_message_id": record.message_id,
        "p_call_id": record.call_id,
        "p_questions": record.questions,
        "p_answers": record.answers,
        "p_status": record.status,
        "p_created_at": timestamp(record.created_at),
    }


def save_compaction_args(record: CompactionRecord) -> dict[str, Any]:
    """The named arguments of ``public.save_compaction``."""
    return {
        "p_session_id": record.session_id,
        "p_status": record.status,
        "p_trigger": record.trigger,
        "p_started_at": timestamp(record.started_at),
        "p_finished_at": timestamp(record.finished_at),
        "p_messages_folded": record.messages_folded,
        "p_tokens_before": record.tokens_before,
        "p_tokens_after": record.tokens_after,
        "p_error": record.error,
        "p_summary_message_id": record.summary_message_id,
        "p_folded_through_seq": record.folded_through_seq,
        "p_compactions": record.compactions,
    }
