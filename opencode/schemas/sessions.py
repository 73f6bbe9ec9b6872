"""Session requests and responses."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opencode.schemas.common import NO_NUL, SAFE_TEXT, ModelId, Money, ProviderId, UsageOut

_PROVIDER_DOC = "anthropic, openai or gemini; must not be empty"
_MODEL_DOC = (
    "A model id (with provider_id, or one LiteLLM knows for exactly one provider) or "
    "'provider/model'; neither part may be empty or padded with spaces (400)"
)


class SessionCreate(BaseModel):
    title: Annotated[str, Field(max_length=200), SAFE_TEXT, NO_NUL] | None = None
    provider_id: ProviderId | None = Field(None, description=_PROVIDER_DOC)
    model_id: ModelId | None = Field(None, description=_MODEL_DOC)


class SessionUpdate(BaseModel):
    """At least one field. ``provider_id``/``model_id`` are checked like a message's and the
    resolved ``provider/model`` becomes the session's model."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("title", "provider_id", "model_id")
            ]
        }
    )

    title: Annotated[str, Field(min_length=1, max_length=200), SAFE_TEXT, NO_NUL] | None = None
    provider_id: ProviderId | None = Field(None, description=_PROVIDER_DOC)
    model_id: ModelId | None = Field(None, description=_MODEL_DOC)

    @model_validator(mode="after")
    def _something_to_change(self) -> "SessionUpdate":
        if self.title is None and self.provider_id is None and self.model_id is None:
            raise ValueError("Send at least one of title, provider_id or model_id.")
        return self

    @property
    def changes_model(self) -> bool:
        return self.provider_id is not None or self.model_id is not None


class SessionOut(BaseModel):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    model: str | None = Field(description="provider/model used when a message names none")
    provider_id: str | None
    model_id: str | None
    status: Literal["idle", "busy"]
    message_count: int
    total_cost: Money
    usage: UsageOut


class ModelCostOut(BaseModel):
    model: str
    cost: Money
    steps: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int


class CostOut(BaseModel):
    session_id: str
    total_cost: Money
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    models: list[ModelCostOut]


class DeletedOut(BaseModel):
    id: str
    deleted: bool


class TitleOut(BaseModel):
    session_id: str
    title: str


class AbortOut(BaseModel):
    session_id: str
    aborted: bool
    message_id: str | None = None


class TodoOut(BaseModel):
    id: str
    content: str
    status: str
    priority: str = "medium"


class CompactionStatusOut(BaseModel):
    session_id: str
    status: Literal["idle", "running", "completed", "failed"] = Field(
        description="idle: never compacted; otherwise the state of the latest compaction"
    )
    trigger: Literal["messages", "tokens", "manual"] | None = None
    started_at: datetime | None = None
    last_compacted_at: datetime | None = Field(
        None, description="When the latest compaction finished (successfully or not)"
    )
    messages_folded: int = Field(0, description="Messages the latest compaction folded")
    tokens_before: int = Field(0, description="Estimated tokens of the model's view before")
    tokens_after: int = Field(0, description="Estimated tokens of the model's view after")
    summary_message_id: str | None = Field(
        None, description="The summary in force (from the latest successful compaction)"
    )
    compactions: int = Field(0, description="Successful compactions so far")
    error: str | None = None
