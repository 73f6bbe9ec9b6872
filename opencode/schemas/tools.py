"""Tool catalog responses: what the agent can call, and which web search backend it uses."""

from typing import Any

from pydantic import BaseModel, Field

from opencode.tools.search_backends import SearchProvider


class ToolInfo(BaseModel):
    name: str
    description: str = Field(description="What the model is told about the tool")
    parameters: dict[str, Any] = Field(
        description="JSON schema of the arguments object, exactly as sent to the model"
    )


class SearchBackendInfo(BaseModel):
    provider: SearchProvider = Field(description="The backend the websearch tool uses")
    configured_by: str = Field(
        description="What chose it: OPENCODE_SEARCH_PROVIDER, the key's variable "
        "(TAVILY_API_KEY, BRAVE_API_KEY, EXA_API_KEY, SEARXNG_URL), or 'default' (DuckDuckGo)"
    )


class ToolList(BaseModel):
    tools: list[ToolInfo]
    search: SearchBackendInfo | None = Field(
        description="The active web search backend; null when no websearch tool is registered"
    )
