"""The one place events become Server-Sent Events frames."""

from collections.abc import AsyncIterator

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent


def frame(event_id: int | None, event: BaseModel) -> ServerSentEvent:
    """``event: <type>``, ``id: <n>``, ``data: <json with the same type>``."""
    return ServerSentEvent(
        data=event.model_dump_json(),
        event=getattr(event, "type", None),
        id=None if event_id is None else str(event_id),
    )


def sse_response(
    frames: AsyncIterator[ServerSentEvent], *, keepalive: float
) -> EventSourceResponse:
    """Stream ``frames``; a ``: ping`` comment goes out every ``keepalive`` seconds.

    ``X-Accel-Buffering: no`` keeps reverse proxies (and the HF Spaces front) from buffering."""
    return EventSourceResponse(
        frames,
        ping=keepalive,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
