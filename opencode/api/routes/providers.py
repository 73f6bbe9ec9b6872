"""``/provider``: which LLM providers are configured and which models they offer."""

from fastapi import APIRouter

from opencode.api.deps import CatalogDep
from opencode.api.errors import error_responses
from opencode.schemas.common import SafeStr
from opencode.schemas.providers import ModelList, ProviderDetail, ProviderInfo

router = APIRouter(prefix="/provider", tags=["providers"])

ONE_PROVIDER = error_responses(
    400, 401, 404, 422, notes={404: "not_found: not anthropic, openai or gemini"}
)


@router.get("", responses=error_responses(400, 401))
async def list_providers(catalog: CatalogDep) -> list[ProviderInfo]:
    return catalog.list_providers()


@router.get("/{provider_id}", responses=ONE_PROVIDER)
async def get_provider(provider_id: SafeStr, catalog: CatalogDep) -> ProviderDetail:
    return catalog.get_provider(provider_id)


@router.get("/{provider_id}/model", responses=ONE_PROVIDER)
async def list_models(provider_id: SafeStr, catalog: CatalogDep) -> ModelList:
    """Models from LiteLLM's offline map; ``supports_reasoning`` says which take a message's
    ``reasoning_effort``."""
    return catalog.list_models(provider_id)
