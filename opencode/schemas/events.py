"""The closed union of events a message stream carries. Names and fields are public API,
except the ``INTERNAL_EVENTS``, which only other wire formats (Codex) are made from.

Every stream ends with exactly one ``done`` (completed, max_steps or aborted) or ``error``.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from opencode.schemas.common import Money, UsageOut


class MessageStart(BaseModel):
    type: Literal["message_start"] = "message_start"
    message_id: str
    parent_id: str | None
    session_id: str
    model: str


class StepStart(BaseModel):
    type: Literal["step_start"] = "step_start"
    step_number: int
    max_steps: int


class TextEvent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ReasoningEvent(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    text: str


class ToolCallOut(BaseModel):
    id: str
    name: str
    arguments: Any


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    tool_call: ToolCallOut


class ToolResultEvent(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    text: str
    tool_call_id: str
    name: str
    is_error: bool = False


class QuestionEvent(BaseModel):
    type: Literal["question"] = "question"
    question_id: str
    tool_call_id: str
    questions: list[dict[str, Any]]


class StepFinish(BaseModel):
    type: Literal["step_finish"] = "step_finish"
    step_number: int
    stop_reason: str
    cost: Money
    usage: UsageOut


class CompactionEvent(BaseModel):
    """A compaction this turn triggered: ``started``, then ``completed`` or ``failed``."""

    type: Literal["compaction"] = "compaction"
    status: Literal["started", "completed", "failed"]
    trigger: Literal["messages", "tokens", "manual"]
    messages_folded: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    summary_message_id: str | None = None
    cost: Money = 0.0
    error: str | None = None


class RetryEvent(BaseModel):
    """The model call failed in a way worth retrying; the step is sent again after ``delay``."""

    type: Literal["retry"] = "retry"
    attempt: int = Field(description="Retry number, from 1")
    delay: float = Field(description="Seconds until the retry")
    message: str = Field(description="What failed")


class Done(BaseModel):
    type: Literal["done"] = "done"
    message_id: str
    stop_reason: str = Field(
        description="stop, length, max_steps, aborted (POST /abort), shutdown (the server "
        "stopped), quota (the user's daily token quota was spent before the next step), or "
        "the provider's own finish reason"
    )
    cost: Money
    usage: UsageOut


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    error: str
    message_id: str | None = None
    status_code: int | None = None


class ItemsCompleted(BaseModel):
    """Internal: never sent in the default stream. The OpenAI Responses / Codex
    ``ResponseItem``s the turn has just finalised (``events/codex_items.py`` made them), in
    history order, which the Codex stream sends as ``rawResponseItem/completed``. ``turn_id``
    is the id of the user message that started the turn."""

    type: Literal["items_completed"] = "items_completed"
    turn_id: str
    items: list[dict[str, Any]]


StreamEvent = Annotated[
    MessageStart
    | StepStart
    | TextEvent
    | ReasoningEvent
    | ToolCallEvent
    | ToolResultEvent
    | QuestionEvent
    | StepFinish
    | CompactionEvent
    | RetryEvent
    | Done
    | ErrorEvent
    | ItemsCompleted,
    Field(discriminator="type"),
]
FINAL_EVENTS = (Done, ErrorEvent)
INTERNAL_EVENTS = (ItemsCompleted,)  # in the run's log for other encoders; the default skips them


class ResyncEvent(BaseModel):
    """First frame of a stream resumed from a ``Last-Event-ID`` the server cannot replay from
    (too old, from before a restart, or from another turn): what follows is not contiguous
    with what the client saw, so it should reload the state it shows."""

    type: Literal["server.resync"] = "server.resync"
    reason: str


class BusEvent(BaseModel):
    """An event on ``GET /event``: ``type`` is dotted (``session.created``), data in ``properties``."""

    type: str
    properties: dict[str, Any] = Field(default_factory=dict)
