"""``/tool``: the tools the agent can call, and which web search backend is active."""

from fastapi import APIRouter

from opencode.api.deps import RegistryDep
from opencode.api.errors import error_responses
from opencode.schemas.tools import ToolList
from opencode.services.tools import tool_catalog

router = APIRouter(prefix="/tool", tags=["tools"])


@router.get("", response_model=ToolList, responses=error_responses(400, 401))
async def list_tools(registry: RegistryDep) -> ToolList:
    return tool_catalog(registry)
