"""``/session``: sessions, messages (send = SSE stream), abort, cost, title, todos, compaction.
The history as Codex items is in ``session_items.py``, behind the same owner check."""

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response, status

from opencode.api.deps import (
    CallerDep,
    CompactorDep,
    RunsDep,
    SessionsDep,
    SettingsDep,
    TitlesDep,
)
from opencode.api.errors import error_responses
from opencode.api.streams import STREAM_CONTENT, StreamWireDep, stream_response
from opencode.schemas.common import SafeStr
from opencode.schemas.messages import MessageCreate, MessagePage
from opencode.schemas.sessions import (
    AbortOut,
    CompactionStatusOut,
    CostOut,
    DeletedOut,
    SessionCreate,
    SessionOut,
    SessionUpdate,
    TitleOut,
    TodoOut,
)

MAX_OFFSET = 2**31 - 1  # past SQLite's integer range a query would fail, not answer []
# A page of a session's messages (``/message``, and ``/items``, whose pages count messages too)
PageLimit = Annotated[int | None, Query(ge=1, le=1000)]
PageOffset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
PageOrder = Annotated[Literal["asc", "desc"], Query()]
ALL_PAGE = 10_000  # ``GET /session`` without ``limit``: this many, then a ``Link`` to the next


async def owned_session(
    session_id: Annotated[SafeStr, Path()], caller: CallerDep, sessions: SessionsDep
) -> None:
    """Every ``/session/{session_id}/...`` route: another user's session answers 404 exactly as
    one that does not exist, before the route does anything."""
    await sessions.check_access(session_id, caller)


router = APIRouter(prefix="/session", tags=["sessions"])
session_router = APIRouter(
    prefix="/session/{session_id}", tags=["sessions"], dependencies=[Depends(owned_session)]
)

SSE = STREAM_CONTENT
MODEL_CHOICE = {
    400: "bad_request: unknown or unconfigured provider or model, or an empty provider_id or "
    "model_id"
}
NO_SESSION = {404: "not_found: no session with this id"}
BUSY = {409: "conflict: a reply is being generated or the session is being compacted"}
READ = error_responses(400, 401, 404, 422, notes=NO_SESSION)
CHANGE = error_responses(400, 401, 403, 404, 422, notes=NO_SESSION)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 413, 422, notes=MODEL_CHOICE),
)
async def create_session(
    sessions: SessionsDep, caller: CallerDep, body: Annotated[SessionCreate | None, Body()] = None
) -> SessionOut:
    return await sessions.create(body or SessionCreate(), owner=caller.user_id)


@router.get("", responses=error_responses(400, 401, 422))
async def list_sessions(
    sessions: SessionsDep,
    caller: CallerDep,
    request: Request,
    response: Response,
    limit: Annotated[int | None, Query(ge=1, le=ALL_PAGE)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[SessionOut]:
    """The caller's sessions, newest first: all of them without ``limit`` (up to 10,000 per
    answer). The total is in ``X-Total-Count``; when more follow, ``Link: <...>; rel="next"``
    names the next page."""
    size = limit or ALL_PAGE
    page, total = await sessions.page(limit=size, offset=offset, owner=caller.owner_filter)
    response.headers["X-Total-Count"] = str(total)
    if offset + len(page) < total and len(page) == size:
        following = request.url.include_query_params(limit=size, offset=offset + size)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return page


@session_router.get("", responses=READ)
async def get_session(session_id: SafeStr, sessions: SessionsDep) -> SessionOut:
    return await sessions.get(session_id)


@session_router.patch(
    "",
    responses=error_responses(400, 401, 403, 404, 413, 422, notes={**MODEL_CHOICE, **NO_SESSION}),
)
async def update_session(
    session_id: SafeStr, body: SessionUpdate, sessions: SessionsDep
) -> SessionOut:
    """Rename, and/or change the model later messages use (``provider_id``/``model_id``,
    checked like a message's; the resolved ``provider/model`` is stored). At least one field."""
    return await sessions.update(session_id, body)


@session_router.delete("", responses=CHANGE)
async def delete_session(session_id: SafeStr, sessions: SessionsDep) -> DeletedOut:
    """Deletes the session with its messages, todos and questions; aborts a running turn first."""
    return await sessions.delete(session_id)


@session_router.get("/message", responses=READ)
async def list_messages(
    session_id: SafeStr,
    sessions: SessionsDep,
    limit: PageLimit = None,
    offset: PageOffset = 0,
    order: PageOrder = "asc",
) -> MessagePage:
    return await sessions.messages(session_id, limit=limit, offset=offset, order=order)


@session_router.post(
    "/message",
    response_class=Response,
    responses={
        **SSE,
        **error_responses(
            400,
            401,
            403,
            404,
            409,
            413,
            422,
            429,
            503,
            notes={
                400: f"{MODEL_CHOICE[400]}, or reasoning_effort for a model without reasoning",
                **NO_SESSION,
                **BUSY,
                422: "validation_error: the body does not match the schema, or names a tool "
                "this server does not have",
            },
            busy=True,
        ),
    },
)
async def send_message(
    session_id: SafeStr,
    body: MessageCreate,
    runs: RunsDep,
    settings: SettingsDep,
    wire: StreamWireDep,
) -> Response:
    run = await runs.start(session_id, body)
    return stream_response(run, wire, after=0, keepalive=settings.keepalive_seconds)


@session_router.get(
    "/stream",
    response_class=Response,
    responses={
        **SSE,
        **error_responses(
            400,
            401,
            404,
            422,
            notes={404: "not_found: no session with this id, or nothing runs in it"},
        ),
    },
)
async def follow_stream(
    session_id: SafeStr,
    runs: RunsDep,
    settings: SettingsDep,
    wire: StreamWireDep,
    last_event_id: Annotated[int, Header(ge=0)] = 0,
) -> Response:
    """Re-attach to the turn running in this session (after a disconnect): replays the
    stream from ``Last-Event-ID``, then follows it live. 404 when nothing is running."""
    run = await runs.follow(session_id)
    return stream_response(run, wire, after=last_event_id, keepalive=settings.keepalive_seconds)


@session_router.post("/abort", responses=CHANGE)
async def abort(session_id: SafeStr, runs: RunsDep) -> AbortOut:
    return await runs.abort(session_id)


@session_router.post(
    "/generate-title",
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        422,
        429,
        502,
        503,
        notes={
            **NO_SESSION,
            400: "bad_request: the session's (or OPENCODE_TITLE_MODEL's) model is unknown or "
            "unconfigured",
            409: "conflict: the session has no message yet",
            502: "provider_error: the title model failed or returned an empty title",
        },
    ),
)
async def generate_title(session_id: SafeStr, titles: TitlesDep) -> TitleOut:
    """Ask a model (``OPENCODE_TITLE_MODEL``, else the session's) for a title from the first
    message, store it and return it. 409 while the session has no message."""
    return await titles.generate(session_id)


@session_router.get("/cost", responses=READ)
async def cost(session_id: SafeStr, sessions: SessionsDep) -> CostOut:
    return await sessions.cost(session_id)


@session_router.post(
    "/compact",
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        422,
        429,
        502,
        503,
        notes={
            **NO_SESSION,
            400: "bad_request: the session's model is unknown or unconfigured",
            409: "conflict: a turn or another compaction runs, or there is nothing to fold",
            502: "provider_error: the model failed to write the summary",
        },
    ),
)
async def compact(session_id: SafeStr, runs: RunsDep) -> CompactionStatusOut:
    """Fold all but the latest exchange into a summary now; returns the finished status.
    409 while a turn or another compaction runs, or when there is nothing to fold."""
    return await runs.compact(session_id)


@session_router.get("/compaction-status", responses=READ)
async def compaction_status(session_id: SafeStr, compactor: CompactorDep) -> CompactionStatusOut:
    return await compactor.status(session_id)


@session_router.get("/todo", responses=READ)
async def todos(session_id: SafeStr, sessions: SessionsDep) -> list[TodoOut]:
    return await sessions.todos(session_id)
