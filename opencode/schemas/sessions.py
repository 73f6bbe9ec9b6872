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
