"""Provider and model catalog responses.

Model facts come from LiteLLM's offline cost map (pinned with LiteLLM), so prices are the
ones cost tracking uses. Prices are USD per million tokens; ``None`` means the map has none.
"""

from pydantic import BaseModel, ConfigDict, Field


class ModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Model id without the provider prefix, e.g. gpt-4o-mini")
    provider_id: str
    name: str = Field(description="Display name (LiteLLM's map has none, so this is the id)")
    context_window: int | None = Field(description="Maximum input tokens")
    max_output_tokens: int | None
    input_cost_per_million: float | None
    output_cost_per_million: float | None
    cache_read_cost_per_million: float | None
    cache_write_cost_per_million: float | None
    supports_tools: bool
    supports_reasoning: bool
    supports_vision: bool


class ProviderInfo(BaseModel):
    id: str
    name: str
    configured: bool = Field(description="Whether an API key is set for this provider")
    env: list[str] = Field(description="Env vars that hold the API key; the first is canonical")
    api_base: str | None = Field(description="Custom base URL (gateway or local server), if set")
    default_model: str = Field(description="Model id used when a request names only the provider")
    model_count: int = Field(description="Number of models in the provider's model list")


class ProviderDetail(ProviderInfo):
    """A provider with its model list (the same list as ``GET /provider/{id}/model``)."""

    models: list[ModelInfo]


class ModelList(BaseModel):
    provider_id: str
    models: list[ModelInfo]
