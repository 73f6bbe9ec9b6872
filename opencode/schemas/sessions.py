"""Session requests and responses."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from opencode.schemas.common import UsageOut


class SessionCreate(BaseModel):
    title: str | None = Field(None, max_length=200)
    provider_id: str | None = Field(None, max_length=100)
    model_id: str | None = Field(None, max_length=200)


class SessionUpdate(BaseModel):
    title: str = Field(min_length=1, max_length=200)


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
    total_cost: float
    usage: UsageOut


class ModelCostOut(BaseModel):
    model: str
    cost: float
    steps: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int


class CostOut(BaseModel):
    session_id: str
    total_cost: float
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    models: list[ModelCostOut]


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
