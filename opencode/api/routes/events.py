"""``GET /event``: the server's event bus as SSE (replays from ``Last-Event-ID``)."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from opencode.api.deps import BusDep, CallerDep, SessionsDep, SettingsDep
from opencode.api.errors import error_responses
from opencode.events.sse import encode, sse_response
from opencode.schemas.common import SafeStr
from opencode.schemas.events import BusEvent

router = APIRouter(tags=["events"])


@router.get(
    "/event",
    description="The caller's events (an admin without ``X-User-Id``: everyone's), as SSE; "
    "with ``?session_id=``, only that session's (and the ``server.*`` ones). "
    "Replays from ``Last-Event-ID``. In supabase auth mode the token may come as "
    "``?access_token=``, since a browser ``EventSource`` cannot send headers.",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream"},
        **error_responses(400, 401, 404, 422),
    },
)
async def events(
    bus: BusDep,
    settings: SettingsDep,
    caller: CallerDep,
    sessions: SessionsDep,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
    session_id: Annotated[
        SafeStr | None, Query(description="Only this session's events (it must be yours).")
    ] = None,
) -> Response:
    if session_id is not None:
        await sessions.check_access(session_id, caller)  # 404 when not the caller's
    frames = bus.frames(last_event_id, viewer=caller.owner_filter, session_id=session_id)

    async def stream():
        yield CONNECTED
        async for batch in frames:
            yield batch

    return sse_response(stream(), keepalive=settings.keepalive_seconds)


CONNECTED = encode(None, BusEvent(type="server.connected"))  # no id: not replayable
