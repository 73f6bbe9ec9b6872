"""``/question``: what the agent asked the user, and the user's reply or dismissal."""

from typing import Annotated

from fastapi import APIRouter, Query

from opencode.api.deps import CallerDep, QuestionsDep
from opencode.api.errors import error_responses
from opencode.schemas.common import SafeStr
from opencode.schemas.questions import QuestionOut, ReplyIn

router = APIRouter(prefix="/question", tags=["questions"])

ANSWER = {
    404: "not_found: no question with this id",
    409: "conflict: the question is no longer pending (answered, dismissed or expired)",
}


@router.get("", responses=error_responses(400, 401, 422))
async def list_questions(
    questions: QuestionsDep,
    caller: CallerDep,
    session_id: Annotated[SafeStr | None, Query()] = None,
) -> list[QuestionOut]:
    """The caller's pending questions, oldest first."""
    return await questions.list_pending(session_id, owner=caller.owner_filter)


@router.post(
    "/{question_id}/reply",
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        notes={
            **ANSWER,
            422: "validation_error: not one list of answers per question, or invalid text",
        },
    ),
)
async def reply(
    question_id: SafeStr, body: ReplyIn, questions: QuestionsDep, caller: CallerDep
) -> QuestionOut:
    return await questions.reply(question_id, body.answers, caller=caller)


@router.post(
    "/{question_id}/reject", responses=error_responses(400, 401, 403, 404, 409, 422, notes=ANSWER)
)
async def reject(question_id: SafeStr, questions: QuestionsDep, caller: CallerDep) -> QuestionOut:
    return await questions.reject(question_id, caller=caller)
