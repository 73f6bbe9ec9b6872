"""The tool catalogue (``GET /tool``): what the agent can call, and its web search backend."""

from opencode.schemas.tools import SearchBackendInfo, ToolInfo, ToolList
from opencode.tools.registry import ToolRegistry
from opencode.tools.websearch import WebSearch


def tool_catalog(registry: ToolRegistry) -> ToolList:
    tools = registry.select(None)
    search = next((tool for tool in tools if isinstance(tool, WebSearch)), None)
    return ToolList(
        tools=[
            ToolInfo(name=spec.name, description=spec.description, parameters=spec.parameters)
            for spec in registry.specs(tools)
        ],
        search=SearchBackendInfo(provider=search.provider, configured_by=search.configured_by)
        if search
        else None,
    )
