"""``GET /usage`` and ``PUT /usage/limit``: a user's tokens today against the daily quota."""

from datetime import date, datetime

from pydantic import BaseModel, Field

from opencode.schemas.common import Money


class ModelDayOut(BaseModel):
    model: str = Field(description="provider/model")
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: Money
    requests: int = Field(description="Model calls: turn steps, titles and summaries")


class UsageOut(BaseModel):
    user_id: str
    day: date = Field(description="The UTC day these figures are for")
    used: int = Field(description="Input + output tokens of every model call today")
    limit: int = Field(description="Tokens per UTC day; 0 = unlimited")
    remaining: int | None = Field(description="limit - used, never below 0; null when unlimited")
    resets_at: datetime = Field(description="The next UTC midnight")
    reserved: int = Field(0, description="Tokens held by model calls running now")
    cost: Money = 0.0
    requests: int = 0
    by_model: list[ModelDayOut] = Field(default_factory=list)


class LimitIn(BaseModel):
    user_id: str = Field(description="The user (a UUID)")
    daily_token_limit: int | None = Field(
        ge=0, description="Tokens per UTC day for this user; 0 = unlimited; null = the default"
    )


class LimitOut(BaseModel):
    user_id: str
    daily_token_limit: int | None = Field(description="The override; null when the default applies")
    default_limit: int = Field(description="OPENCODE_DAILY_TOKEN_LIMIT (0 = unlimited)")
