"""Messages, their parts, and the send-message request."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from opencode.schemas.common import UsageOut


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ReasoningPart(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    text: str
    signature: str | None = None
    redacted: str | None = None


class ToolPart(BaseModel):
    type: Literal["tool"] = "tool"
    call_id: str
    name: str
    arguments: Any
    state: Literal["pending", "running", "completed", "error"]
    output: str | None = None


class StepStartPart(BaseModel):
    type: Literal["step-start"] = "step-start"
    step_number: int


class StepFinishPart(BaseModel):
    type: Literal["step-finish"] = "step-finish"
    step_number: int
    stop_reason: str
    cost: float
    usage: UsageOut


class CompactionPart(BaseModel):
    """The summary that replaced the messages up to ``folded_through_seq`` in the model's view."""

    type: Literal["compaction"] = "compaction"
    summary: str
    trigger: Literal["messages", "tokens", "manual"]
    messages_folded: int
    folded_through_seq: int
    tokens_before: int
    tokens_after: int


Part = Annotated[
    TextPart | ReasoningPart | ToolPart | StepStartPart | StepFinishPart | CompactionPart,
    Field(discriminator="type"),
]


class MessageOut(BaseModel):
    id: str
    session_id: str
    role: Literal["user", "assistant"]
    parent_id: str | None
    created_at: datetime
    updated_at: datetime
    status: Literal["running", "completed", "aborted", "error"]
    parts: list[Part]
    content: str
    model: str | None
    usage: UsageOut
    cost: float
    error: str | None = None


class MessagePage(BaseModel):
    messages: list[MessageOut]
    total_count: int
    limit: int | None
    offset: int


class MessageCreate(BaseModel):
    content: str = Field(min_length=1)
    provider_id: str | None = Field(None, max_length=100)
    model_id: str | None = Field(None, max_length=200)
    system: str | None = None
    max_steps: int = Field(25, ge=1, le=100)
    tools: list[str] | None = Field(None, description="Tool names to enable (default: all)")
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        None,
        description="Turn on extended thinking / reasoning (Anthropic thinking budget, OpenAI "
        "reasoning effort, Gemini thinking) for models that support it",
    )
