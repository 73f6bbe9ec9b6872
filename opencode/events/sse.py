"""The one place events become Server-Sent Events frames."""

import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from opencode.core.text import scrub_json

log = logging.getLogger(__name__)


def frame(event_id: int | None, event: BaseModel) -> ServerSentEvent:
    """``event: <type>``, ``id: <n>``, ``data: <json with the same type>``."""
    return ServerSentEvent(
        data=_json(event),
        event=getattr(event, "type", None),
        id=None if event_id is None else str(event_id),
    )


def _json(event: BaseModel) -> str:
    """Text reaching an event is scrubbed where it enters the system; should any slip through
    anyway, the frame is still sent (with U+FFFD) instead of cutting the stream."""
    try:
        return event.model_dump_json()
    except ValueError:
        log.error("event %s held text that is not valid Unicode", getattr(event, "type", "?"))
        return json.dumps(scrub_json(event.model_dump(mode="json")), ensure_ascii=False)


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
