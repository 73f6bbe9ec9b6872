"""The FastAPI application: resources in the lifespan, middleware, error handlers, routers."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from opencode import __version__
from opencode.api.deps import Services
from opencode.api.errors import install_error_handlers
from opencode.api.middleware import BasicAuthMiddleware, BodyLimitMiddleware
from opencode.api.routes import events, providers, questions, sessions, tools
from opencode.core.logging import configure_logging
from opencode.core.settings import Settings
from opencode.events.bus import EventBus
from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.openai_native import OpenAIStreamClient
from opencode.llm.retry import RetryingClient
from opencode.llm.router import ProviderRouter
from opencode.schemas.common import ErrorOut
from opencode.services.compaction import CompactionPolicy, Compactor
from opencode.services.providers import ProviderCatalog
from opencode.services.questions import QuestionBroker
from opencode.services.runs import RunManager, retry_notifier
from opencode.services.sessions import SessionService
from opencode.services.titles import TitleService
from opencode.services.todos import TodoService
from opencode.storage.factory import create_store
from opencode.tools.registry import default_registry


def build_services(settings: Settings) -> Services:
    store = create_store(settings.database_url)
    bus = EventBus()
    catalog = ProviderCatalog(settings)
    idle = settings.stream_idle_timeout
    # OpenAI-compatible streams skip LiteLLM's per-chunk cost (~9x less CPU; bench/README.md).
    native = {"openai": OpenAIStreamClient(idle_timeout=idle)} if settings.native_openai else {}
    models = ProviderRouter(LiteLLMClient(idle_timeout=idle), native)
    client = RetryingClient(
        models,
        max_retries=settings.max_retries,
        base_delay=settings.retry_base_delay,
        max_delay=settings.retry_max_delay,
        on_retry=retry_notifier(bus),
    )
    questions = QuestionBroker(store, bus, timeout=settings.question_timeout)
    compactor = Compactor(
        store=store,
        bus=bus,
        client=client,
        catalog=catalog,
        policy=CompactionPolicy(
            max_messages=settings.compact_messages, ratio=settings.compact_ratio
        ),
    )
    registry = default_registry(settings)
    runs = RunManager(
        store=store,
        bus=bus,
        catalog=catalog,
        registry=registry,
        client=client,
        todos=TodoService(store, bus),
        questions=questions,
        compactor=compactor,
        max_output_tokens=settings.max_output_tokens,
    )
    return Services(
        settings=settings,
        models=models,
        store=store,
        bus=bus,
        catalog=catalog,
        questions=questions,
        runs=runs,
        sessions=SessionService(store=store, bus=bus, catalog=catalog, runs=runs),
        titles=TitleService(
            store=store, bus=bus, catalog=catalog, client=client, title_model=settings.title_model
        ),
        registry=registry,
        compactor=compactor,
    )


ERROR_RESPONSES = {
    400: "Bad model or provider choice",
    401: "Missing or wrong credentials",
    404: "Unknown id",
    409: "Busy, or no longer pending",
    413: "Request body too large",
    422: "Invalid input",
    502: "The model provider failed",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        await services.store.initialize()
        await services.runs.recover()
        # Build the model lists from LiteLLM's map now, off the loop, not in a first request.
        await asyncio.to_thread(services.catalog.list_providers)
        app.state.services = services
        try:
            yield
        finally:
            await services.runs.shutdown()
            await services.models.aclose()  # after the runs: they stream through it
            services.bus.close()
            await services.store.close()

    app = FastAPI(
        title="OpenCode API",
        version=__version__,
        description="LLM agent API server: sessions, tools, SSE streaming, cost tracking.",
        lifespan=lifespan,
        responses={
            code: {"model": ErrorOut, "description": description}
            for code, description in ERROR_RESPONSES.items()
        },
    )
    install_error_handlers(app)
    for router in (
        sessions.router,
        providers.router,
        events.router,
        questions.router,
        tools.router,
    ):
        app.include_router(router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # Added innermost first: CORS wraps auth (preflights and 401s carry CORS headers),
    # auth wraps the body limit (no reading bodies of unauthenticated requests).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.server_password:
        app.add_middleware(BasicAuthMiddleware, password=settings.server_password)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Total-Count"],
        )
    return app
