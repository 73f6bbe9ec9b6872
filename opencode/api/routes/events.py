"""``GET /event``: the server's event bus as SSE (replays from ``Last-Event-ID``)."""

from typing import Annotated

from fastapi import APIRouter, Header, Response

from opencode.api.deps import BusDep, CallerDep, SettingsDep
from opencode.api.errors import error_responses
from opencode.events.sse import frame, sse_response
from opencode.schemas.events import BusEvent

router = APIRouter(tags=["events"])


@router.get(
    "/event",
    description="The caller's events (an admin without ``X-User-Id``: everyone's), as SSE. "
    "Replays from ``Last-Event-ID``. In supabase auth mode the token may come as "
    "``?access_token=``, since a browser ``EventSource`` cannot send headers.",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream"},
        **error_responses(400, 401, 422),
    },
)
async def events(
    bus: BusDep,
    settings: SettingsDep,
    caller: CallerDep,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> Response:
    async def frames():
        yield frame(None, BusEvent(type="server.connected"))  # no id: not replayable
        async for event_id, event in bus.subscribe(last_event_id, viewer=caller.owner_filter):
            yield frame(event_id, event)

    return sse_response(frames(), keepalive=settings.keepalive_seconds)
