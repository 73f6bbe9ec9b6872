"""``/provider``: which LLM providers are configured and which models they offer."""

from fastapi import APIRouter

from opencode.api.deps import CatalogDep

router = APIRouter(prefix="/provider", tags=["providers"])


@router.get("")
async def list_providers(catalog: CatalogDep):
    return catalog.list_providers()


@router.get("/{provider_id}")
async def get_provider(provider_id: str, catalog: CatalogDep):
    return catalog.get_provider(provider_id)


@router.get("/{provider_id}/model")
async def list_models(provider_id: str, catalog: CatalogDep):
    return catalog.list_models(provider_id)
