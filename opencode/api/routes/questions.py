"""``/question``: what the agent asked the user, and the user's reply or dismissal."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from opencode.api.deps import QuestionsDep
from opencode.storage.base import QuestionRecord

router = APIRouter(prefix="/question", tags=["questions"])


class QuestionOut(BaseModel):
    id: str
    session_id: str
    message_id: str
    tool_call_id: str
    questions: list[dict[str, Any]]
    status: str
    created_at: Any


class ReplyIn(BaseModel):
    answers: list[list[str]] = Field(description="One list of chosen labels/texts per question")


def _out(record: QuestionRecord) -> QuestionOut:
    return QuestionOut(
        id=record.id,
        session_id=record.session_id,
        message_id=record.message_id,
        tool_call_id=record.call_id,
        questions=record.questions,
        status=record.status,
        created_at=record.created_at,
    )


@router.get("")
async def list_questions(
    questions: QuestionsDep, session_id: Annotated[str | None, Query()] = None
) -> list[QuestionOut]:
    return [_out(record) for record in await questions.list_pending(session_id)]


@router.post("/{question_id}/reply")
async def reply(question_id: str, body: ReplyIn, questions: QuestionsDep) -> dict[str, Any]:
    record = await questions.reply(question_id, body.answers)
    return {"id": record.id, "status": "answered", "answers": body.answers}


@router.post("/{question_id}/reject")
async def reject(question_id: str, questions: QuestionsDep) -> dict[str, Any]:
    record = await questions.reject(question_id)
    return {"id": record.id, "status": "rejected"}
