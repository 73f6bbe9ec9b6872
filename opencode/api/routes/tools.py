"""``/tool``: the tools the agent can call, and which web search backend is active."""

from fastapi import APIRouter

from opencode.api.deps import RegistryDep
from opencode.schemas.tools import SearchBackendInfo, ToolInfo, ToolList
from opencode.tools.registry import ToolRegistry
from opencode.tools.websearch import WebSearch

router = APIRouter(prefix="/tool", tags=["tools"])


@router.get("", response_model=ToolList)
async def list_tools(registry: RegistryDep) -> ToolList:
    return _tool_list(registry)


def _tool_list(registry: ToolRegistry) -> ToolList:
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
