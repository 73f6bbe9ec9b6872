"""The FastAPI application: resources in the lifespan, middleware, error handlers, routers."""

import asyncio
from typing import Any

from fastapi import FastAPI, Request, Response

from opencode import __version__
from opencode.api.errors import install_error_handlers
from opencode.api.guards import (
    JSONCORSMiddleware,
    RequestGuardMiddleware,
    SecurityHeadersMiddleware,
    allowed_hosts,
)
from opencode.api.lifecycle import make_lifespan
from opencode.api.middleware import (
    DOC_PATHS,
    PUBLIC_PATHS,
    AuthMiddleware,
    BodyLimitMiddleware,
    MethodsMiddleware,
)
from opencode.api.routes import (
    events,
    providers,
    questions,
    session_items,
    sessions,
    tools,
    usage,
)
from opencode.core.logging import configure_logging
from opencode.core.settings import Settings
from opencode.schemas.common import HealthOut
from opencode.storage.base import Store

HEALTH_STORE_TIMEOUT = 2.0  # seconds a store may take to answer GET /health's ping
HEALTH_RETRY_AFTER = 5  # seconds: about when another instance (or this one, restarted) answers
DESCRIPTION = """LLM agent API server: sessions, tools, SSE streaming, cost tracking.

Every error is JSON `{"error", "detail"}` with `detail` a sentence; a 422 adds `errors`
(`[{"loc", "msg", "type"}]`). Besides what each operation lists, any request can get
400 `bad_host` (a `Host` outside `OPENCODE_ALLOWED_HOSTS`; not `/health`), 401 (by
`OPENCODE_AUTH`: Basic auth with the server password, or a Supabase access token as
`Authorization: Bearer`, `invalid_token` when it does not verify), 403 `forbidden` (a POST, PUT, PATCH or DELETE whose `Origin` is
neither this server nor in `OPENCODE_CORS_ORIGINS`), 405 with the path's `Allow` list, and
413 for a body over `OPENCODE_MAX_BODY_BYTES`. `OPTIONS` on any path answers 204 with
`Allow`; `HEAD` works on every GET operation (headers only, SSE streams included)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, log_sql=settings.log_sql)

    app = FastAPI(
        title="OpenCode API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=make_lifespan(settings),
    )
    install_error_handlers(app)
    for router in (
        sessions.router,
        sessions.session_router,
        session_items.router,
        providers.router,
        events.router,
        questions.router,
        tools.router,
        usage.router,
    ):
        app.include_router(router)

    @app.get(
        "/health",
        tags=["health"],
        responses={
            503: {
                "model": HealthOut,
                "description": "The server is shutting down, or its store does not answer",
            }
        },
    )
    async def health(request: Request, response: Response) -> HealthOut:
        """Liveness and the store's health; never needs auth and answers any ``Host`` (probes
        use the pod's IP). 503 while the server drains for a shutdown, so load balancers stop
        sending turns, and while the store does not answer within a couple of seconds."""
        services = getattr(request.app.state, "services", None)
        kind = services.store_choice.kind if services is not None else None
        shutdown = getattr(request.app.state, "shutdown", None)
        if shutdown is not None and shutdown.draining:
            response.status_code = 503
            response.headers["Retry-After"] = str(HEALTH_RETRY_AFTER)
            return HealthOut(status="shutting_down", version=__version__, store=kind)
        ok = services is not None and await _store_answers(services.store)
        if not ok:
            response.status_code = 503
            response.headers["Retry-After"] = str(HEALTH_RETRY_AFTER)
            return HealthOut(status="degraded", version=__version__, store=kind, ok=False)
        return HealthOut(status="ok", version=__version__, store=kind)

    _describe_tools(app)
    _describe_auth(app, settings)
    _add_middleware(app, settings)
    return app


async def _store_answers(store: Store) -> bool:
    try:
        return await asyncio.wait_for(store.ping(), HEALTH_STORE_TIMEOUT)
    except TimeoutError:
        return False


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first, a request meets:

    1. security headers: outermost, so every answer carries them (400 bad host, CORS
       preflights, 401, 405, 413, SSE, 404, and a 500 it renders itself);
    2. the Host / Origin guard: a rebinding page's request is refused before anything else
       reads it, CORS and auth included; it only rejects, so it adds no CORS headers;
    3. CORS: answers preflights (browsers send them without credentials, so before auth) and
       puts CORS headers on what is inside, 401s included, so a browser client can read them;
    4. auth (``OPENCODE_AUTH``): nothing below it is reached without credentials;
    5. methods: OPTIONS (204 + ``Allow``), 405 and HEAD, after auth like any route;
    6. the body limit, innermost: no body of an unauthenticated request is read.

    ``add_middleware`` puts each new middleware outside the previous ones, hence the order.
    """
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MethodsMiddleware, routes=app.routes)
    public = PUBLIC_PATHS | DOC_PATHS if settings.auth_mode == "supabase" else PUBLIC_PATHS
    app.add_middleware(AuthMiddleware, public_paths=public)
    if settings.cors_origins:
        app.add_middleware(
            JSONCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Total-Count", "Link", "Retry-After"],
        )
    app.add_middleware(
        RequestGuardMiddleware, hosts=allowed_hosts(settings), cors_origins=settings.cors_origins
    )
    app.add_middleware(SecurityHeadersMiddleware)


def _describe_tools(app: FastAPI) -> None:
    """The schema's ``tools`` items list the tool names of the running server's registry (the
    one source of truth, built in the lifespan), so the schema cannot drift from it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI; adding the enum again changes nothing
        services = getattr(app.state, "services", None)
        if services is not None:
            names = services.registry.names()
            tools = schema["components"]["schemas"]["MessageCreate"]["properties"]["tools"]
            for variant in tools.get("anyOf", [tools]):
                if variant.get("type") == "array":
                    variant["items"]["enum"] = names
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


SECURITY_SCHEMES = {
    "password": {"type": "http", "scheme": "basic", "description": "User opencode"},
    "supabase": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A Supabase access token (supabase.auth.getSession())",
    },
}


def _describe_auth(app: FastAPI, settings: Settings) -> None:
    """The schema names the credentials this server's mode takes (so Swagger UI offers an
    Authorize button); the admin token is a bearer token in every mode."""
    mode = settings.auth_mode
    schemes = {}
    if mode in SECURITY_SCHEMES:
        schemes[mode] = SECURITY_SCHEMES[mode]
    if settings.admin_token:
        schemes["admin"] = {"type": "http", "scheme": "bearer", "description": "The admin token"}
    if not schemes:
        return
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schema["components"]["securitySchemes"] = schemes
        schema["security"] = [{name: []} for name in schemes]
        for path, operations in schema["paths"].items():
            if path == "/health":
                for operation in operations.values():
                    operation["security"] = []  # never needs auth
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
