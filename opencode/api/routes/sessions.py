"""``/session``: sessions, messages (send = SSE stream), abort, cost, title, todos, compaction."""

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Query, Response, status

from opencode.api.deps import CompactorDep, RunsDep, SessionsDep, SettingsDep, TitlesDep
from opencode.events.sse import frame, sse_response
from opencode.schemas.messages import MessageCreate, MessagePage
from opencode.schemas.sessions import (
    AbortOut,
    CompactionStatusOut,
    CostOut,
    SessionCreate,
    SessionOut,
    SessionUpdate,
    TitleOut,
    TodoOut,
)
from opencode.services.run_driver import Run

router = APIRouter(prefix="/session", tags=["sessions"])

MAX_OFFSET = 2**31 - 1  # past SQLite's integer range a query would fail, not answer []


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(
    sessions: SessionsDep, body: Annotated[SessionCreate | None, Body()] = None
) -> SessionOut:
    return await sessions.create(body or SessionCreate())


@router.get("")
async def list_sessions(
    sessions: SessionsDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[SessionOut]:
    """Newest first. The total is in the ``X-Total-Count`` header."""
    page, total = await sessions.page(limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return page


@router.get("/{session_id}")
async def get_session(session_id: str, sessions: SessionsDep) -> SessionOut:
    return await sessions.get(session_id)


@router.patch("/{session_id}")
async def update_session(session_id: str, body: SessionUpdate, sessions: SessionsDep) -> SessionOut:
    return await sessions.update(session_id, body)


@router.delete("/{session_id}")
async def delete_session(session_id: str, sessions: SessionsDep) -> dict[str, object]:
    await sessions.delete(session_id)
    return {"id": session_id, "deleted": True}


@router.get("/{session_id}/message")
async def list_messages(
    session_id: str,
    sessions: SessionsDep,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
) -> MessagePage:
    return await sessions.messages(session_id, limit=limit, offset=offset, order=order)


@router.post(
    "/{session_id}/message",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def send_message(
    session_id: str, body: MessageCreate, runs: RunsDep, settings: SettingsDep
) -> Response:
    run = await runs.start(session_id, body)
    return _stream(run, after=0, keepalive=settings.keepalive_seconds)


@router.get(
    "/{session_id}/stream",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def follow_stream(
    session_id: str,
    runs: RunsDep,
    settings: SettingsDep,
    last_event_id: Annotated[int, Header(ge=0)] = 0,
) -> Response:
    """Re-attach to the turn running in this session (after a disconnect): replays the
    stream from ``Last-Event-ID``, then follows it live. 404 when nothing is running."""
    run = await runs.follow(session_id)
    return _stream(run, after=last_event_id, keepalive=settings.keepalive_seconds)


@router.post("/{session_id}/abort")
async def abort(session_id: str, runs: RunsDep) -> AbortOut:
    return await runs.abort(session_id)


@router.post("/{session_id}/generate-title")
async def generate_title(session_id: str, titles: TitlesDep) -> TitleOut:
    return await titles.generate(session_id)


@router.get("/{session_id}/cost")
async def cost(session_id: str, sessions: SessionsDep) -> CostOut:
    return await sessions.cost(session_id)


@router.post("/{session_id}/compact")
async def compact(session_id: str, runs: RunsDep) -> CompactionStatusOut:
    """Fold all but the latest exchange into a summary now; returns the finished status.
    409 while a turn or another compaction runs, or when there is nothing to fold."""
    return await runs.compact(session_id)


@router.get("/{session_id}/compaction-status")
async def compaction_status(session_id: str, compactor: CompactorDep) -> CompactionStatusOut:
    return await compactor.status(session_id)


@router.get("/{session_id}/todo")
async def todos(session_id: str, sessions: SessionsDep) -> list[TodoOut]:
    return await sessions.todos(session_id)


def _stream(run: Run, *, after: int, keepalive: float) -> Response:
    async def frames():
        async for event_id, event in run.follow(after):
            yield frame(event_id, event)

    return sse_response(frames(), keepalive=keepalive)
