"""Resources built once in the lifespan, reached through ``Annotated`` dependencies.

Tests swap any of them with ``app.dependency_overrides``.
"""

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request

from opencode.core.errors import OpencodeError
from opencode.core.settings import Settings
from opencode.core.users import Caller
from opencode.events.bus import EventBus
from opencode.llm.router import ProviderRouter
from opencode.services.auth import Authenticator
from opencode.services.codex_history import CodexHistory
from opencode.services.compaction import Compactor
from opencode.services.draft_writer import DraftWriter
from opencode.services.providers import ProviderCatalog
from opencode.services.questions import QuestionBroker
from opencode.services.quota import QuotaService
from opencode.services.runs import RunManager
from opencode.services.sessions import SessionService
from opencode.services.titles import TitleService
from opencode.storage.base import Store
from opencode.storage.factory import StoreChoice
from opencode.tools.registry import ToolRegistry


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    models: ProviderRouter
    bus: EventBus
    catalog: ProviderCatalog
    questions: QuestionBroker
    runs: RunManager
    sessions: SessionService
    history: CodexHistory
    titles: TitleService
    compactor: Compactor
    registry: ToolRegistry
    store_choice: StoreChoice
    auth: Authenticator
    quota: QuotaService
    http: httpx.AsyncClient  # the app's own outbound client (the JWKS); closed in the lifespan
    writer: DraftWriter  # stores every reply's draft, off the chunk path


def get_services(request: Request) -> Services:
    return request.app.state.services


# The dependencies are coroutines although none of them awaits: FastAPI runs a plain function
# dependency in the thread pool, a hop that cost a turn's start ~0.35 ms each.


async def get_settings(request: Request) -> Settings:
    return get_services(request).settings


async def get_bus(request: Request) -> EventBus:
    return get_services(request).bus


async def get_catalog(request: Request) -> ProviderCatalog:
    return get_services(request).catalog


async def get_questions(request: Request) -> QuestionBroker:
    return get_services(request).questions


async def get_runs(request: Request) -> RunManager:
    return get_services(request).runs


async def get_sessions(request: Request) -> SessionService:
    return get_services(request).sessions


async def get_history(request: Request) -> CodexHistory:
    return get_services(request).history


async def get_titles(request: Request) -> TitleService:
    return get_services(request).titles


async def get_compactor(request: Request) -> Compactor:
    return get_services(request).compactor


async def get_registry(request: Request) -> ToolRegistry:
    return get_services(request).registry


async def get_quota(request: Request) -> QuotaService:
    return get_services(request).quota


async def get_caller(request: Request) -> Caller:
    """The caller ``AuthMiddleware`` authenticated; a request it did not see has none."""
    caller = request.scope.get("state", {}).get("caller")
    if caller is None:
        raise OpencodeError("This request was not authenticated.", status_code=401)
    return caller


SettingsDep = Annotated[Settings, Depends(get_settings)]
BusDep = Annotated[EventBus, Depends(get_bus)]
CatalogDep = Annotated[ProviderCatalog, Depends(get_catalog)]
QuestionsDep = Annotated[QuestionBroker, Depends(get_questions)]
RunsDep = Annotated[RunManager, Depends(get_runs)]
SessionsDep = Annotated[SessionService, Depends(get_sessions)]
HistoryDep = Annotated[CodexHistory, Depends(get_history)]
TitlesDep = Annotated[TitleService, Depends(get_titles)]
CompactorDep = Annotated[Compactor, Depends(get_compactor)]
RegistryDep = Annotated[ToolRegistry, Depends(get_registry)]
QuotaDep = Annotated[QuotaService, Depends(get_quota)]
CallerDep = Annotated[Caller, Depends(get_caller)]
