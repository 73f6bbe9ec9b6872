"""Rows of the SQLite store to records and back: timestamps as fixed-width UTC text, lists and
dicts as compact JSON text."""

import json
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from .base import USAGE_KEYS, CompactionRecord, MessageRecord, QuestionRecord, SessionRecord

# The column order of each SELECT, and of ``message_params``.
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


def to_timestamp(value: datetime) -> str:
    """Fixed-width UTC ISO 8601, so text order is time order and parsing gives it back exactly."""
    if value.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware UTC, got naive {value!r}")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def usage_from_row(row: aiosqlite.Row) -> dict[str, int]:
    return {key: row[key] for key in USAGE_KEYS}


def session_from_row(row: aiosqlite.Row) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        title=row["title"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        model=row["model"],
        message_count=row["message_count"],
        total_cost=row["total_cost"],
        usage=usage_from_row(row),
        user_id=row["user_id"],
    )


def message_params(message: MessageRecord) -> tuple[Any, ...]:
    return (
        message.id,
        message.session_id,
        message.seq,
        message.role,
        message.status,
        message.parent_id,
        message.model,
        message.content,
        to_json(message.parts),
        to_json(message.usage),
        message.cost,
        message.error,
        to_timestamp(message.created_at),
        to_timestamp(message.updated_at),
    )


def message_from_row(row: aiosqlite.Row) -> MessageRecord:
    return MessageRecord(
        id=row["id"],
        session_id=row["session_id"],
        role=row["role"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        status=row["status"],
        parts=json.loads(row["parts"]),
        content=row["content"],
        parent_id=row["parent_id"],
        model=row["model"],
        usage=json.loads(row["usage"]),
        cost=row["cost"],
        error=row["error"],
        seq=row["seq"],
    )


def question_from_row(row: aiosqlite.Row) -> QuestionRecord:
    answers = row["answers"]
    return QuestionRecord(
        id=row["id"],
        session_id=row["session_id"],
        message_id=row["message_id"],
        call_id=row["call_id"],
        questions=json.loads(row["questions"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        status=row["status"],
        answers=None if answers is None else json.loads(answers),
    )


def compaction_params(record: CompactionRecord) -> tuple[Any, ...]:
    return (
        record.session_id,
        record.status,
        record.trigger,
        to_timestamp(record.started_at),
        to_timestamp(record.finished_at) if record.finished_at else None,
        record.messages_folded,
        record.tokens_before,
        record.tokens_after,
        record.error,
        record.summary_message_id,
        record.folded_through_seq,
        record.compactions,
    )


def compaction_from_row(row: aiosqlite.Row) -> CompactionRecord:
    finished = row["finished_at"]
    return CompactionRecord(
        session_id=row["session_id"],
        status=row["status"],
        trigger=row["trigger"],
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=datetime.fromisoformat(finished) if finished else None,
        messages_folded=row["messages_folded"],
        tokens_before=row["tokens_before"],
        tokens_after=row["tokens_after"],
        error=row["error"],
        summary_message_id=row["summary_message_id"],
        folded_through_seq=row["folded_through_seq"],
        compactions=row["compactions"],
    )
