"""Storage records -> wire models."""

from opencode.schemas.common import UsageOut
from opencode.schemas.messages import MessageOut
from opencode.schemas.questions import QuestionOut
from opencode.schemas.sessions import CompactionStatusOut, SessionOut
from opencode.storage.base import CompactionRecord, MessageRecord, QuestionRecord, SessionRecord


def session_out(record: SessionRecord, *, model: str | None, busy: bool) -> SessionOut:
    provider_id, _, model_id = model.partition("/") if model else (None, "", None)
    return SessionOut(
        id=record.id,
        title=record.title,
        created_at=record.created_at,
        updated_at=record.updated_at,
        model=model,
        provider_id=provider_id,
        model_id=model_id or None,
        status="busy" if busy else "idle",
        message_count=record.message_count,
        total_cost=record.total_cost,
        usage=UsageOut(**record.usage),
    )


def message_out(record: MessageRecord) -> MessageOut:
    return MessageOut(
        id=record.id,
        session_id=record.session_id,
        role=record.role,
        parent_id=record.parent_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
        status=record.status,
        parts=record.parts,
        content=record.content,
        model=record.model,
        usage=UsageOut(**record.usage),
        cost=record.cost,
        error=record.error,
    )


def question_out(record: QuestionRecord) -> QuestionOut:
    return QuestionOut(
        id=record.id,
        session_id=record.session_id,
        message_id=record.message_id,
        tool_call_id=record.call_id,
        questions=record.questions,
        status=record.status,
        created_at=record.created_at,
        answers=record.answers,
    )


def compaction_status_out(session_id: str, state: CompactionRecord | None) -> CompactionStatusOut:
    if state is None:
        return CompactionStatusOut(session_id=session_id, status="idle")
    return CompactionStatusOut(
        session_id=session_id,
        status=state.status,
        trigger=state.trigger,
        started_at=state.started_at,
        last_compacted_at=state.finished_at,
        messages_folded=state.messages_folded,
        tokens_before=state.tokens_before,
        tokens_after=state.tokens_after,
        summary_message_id=state.summary_message_id,
        compactions=state.compactions,
        error=state.error,
    )
