"""``/question``: what the agent asked the user, and the user's reply or dismissal."""

from typing import Annotated

from fastapi import APIRouter, Query

from opencode.api.deps import QuestionsDep
from opencode.schemas.questions import QuestionOut, ReplyIn

router = APIRouter(prefix="/question", tags=["questions"])


@router.get("")
async def list_questions(
    questions: QuestionsDep, session_id: Annotated[str | None, Query()] = None
) -> list[QuestionOut]:
    """Pending questions, oldest first."""
    return await questions.list_pending(session_id)


@router.post("/{question_id}/reply")
async def reply(question_id: str, body: ReplyIn, questions: QuestionsDep) -> QuestionOut:
    return await questions.reply(question_id, body.answers)


@router.post("/{question_id}/reject")
async def reject(question_id: str, questions: QuestionsDep) -> QuestionOut:
    return await questions.reject(question_id)
