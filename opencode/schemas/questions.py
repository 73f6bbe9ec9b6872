"""Questions the agent asks the user, and the user's reply."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from opencode.schemas.common import SafeStr


class QuestionOut(BaseModel):
    id: str
    session_id: str
    message_id: str
    tool_call_id: str
    questions: list[dict[str, Any]]
    status: Literal["pending", "answered", "rejected", "expired"]
    created_at: datetime
    answers: list[list[str]] | None = None


class ReplyIn(BaseModel):
    answers: list[list[SafeStr]] = Field(description="One list of chosen labels/texts per question")
