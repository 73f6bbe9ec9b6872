"""Messages, their parts, and the send-message request."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from opencode.schemas.common import ModelId, Money, ProviderId, SafeStr, UsageOut


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str
    phase: Literal["commentary", "final_answer"] | None = Field(
        None,
        description="Codex message phase, stored for imported text; when absent the export "
        "derives it (final_answer for text after the last tool call of a completed message)",
    )


class ReasoningPart(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    text: str
    signature: str | None = None
    redacted: str | None = None
    item_id: str | None = Field(None, description="The id of the imported reasoning item")
    summary: list[str] | None = Field(None, description="An imported item's summary texts")
    encrypted_content: str | None = Field(
        None, description="An imported item's opaque blob (never replayed to a provider)"
    )


class ToolPart(BaseModel):
    type: Literal["tool"] = "tool"
    call_id: str
    name: str
    arguments: Any
    arguments_json: str | None = Field(
        None, description="The arguments exactly as the model sent them (JSON text)"
    )
    state: Literal["pending", "running", "completed", "error"]
    output: str | None = None
    output_content: list[dict[str, Any]] | None = Field(
        None, description="An imported output's content items (text, images); output has the text"
    )


class StepStartPart(BaseModel):
    type: Literal["step-start"] = "step-start"
    step_number: int


class StepFinishPart(BaseModel):
    type: Literal["step-finish"] = "step-finish"
    step_number: int
    stop_reason: str
    cost: Money
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


class ItemPart(BaseModel):
    """A Codex / Responses ``ResponseItem`` imported as it was (``POST /session/{id}/items``)
    that this server cannot run (a shell call, a web search, a developer message, ...): the
    export gives it back unchanged, and the model sees it as text context."""

    type: Literal["item"] = "item"
    item: dict[str, Any]


Part = Annotated[
    TextPart
    | ReasoningPart
    | ToolPart
    | StepStartPart
    | StepFinishPart
    | CompactionPart
    | ItemPart,
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
    cost: Money
    error: str | None = None


class MessagePage(BaseModel):
    messages: list[MessageOut]
    total_count: int
    limit: int | None
    offset: int


class MessageCreate(BaseModel):
    content: SafeStr = Field(min_length=1)
    provider_id: ProviderId | None = Field(
        None, description="anthropic, openai or gemini; must not be empty"
    )
    model_id: ModelId | None = Field(
        None,
        description="A model id (with provider_id, or one LiteLLM knows for exactly one "
        "provider) or 'provider/model'; neither part may be empty or padded with spaces (400). "
        "The chosen model becomes the session's model",
    )
    system: SafeStr | None = Field(None, description="System prompt for this turn")
    max_steps: int = Field(25, ge=1, le=100)
    tools: list[SafeStr] | None = Field(
        None,
        description="Tool names to enable (default: all; GET /tool lists them); an unknown "
        "name is a 422",
    )
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        None,
        description="Turn on extended thinking / reasoning (Anthropic thinking budget, OpenAI "
        "reasoning effort, Gemini thinking). Only for models whose LiteLLM info has "
        "supports_reasoning (the flag in GET /provider/{provider_id}/model): another model in "
        "LiteLLM's map answers 400; a gateway model outside the map gets the option as is",
    )
