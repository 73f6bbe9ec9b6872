"""The one place events become Server-Sent Events frames (and the responses that stream
them, NDJSON too)."""

import json
import logging
from collections.abc import AsyncIterator, Iterable

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from opencode.core.text import scrub_json
from opencode.schemas.events import INTERNAL_EVENTS

log = logging.getLogger(__name__)


def frame(event_id: int | None, event: BaseModel) -> ServerSentEvent:
    """``event: <type>``, ``id: <n>``, ``data: <json with the same type>``."""
    return ServerSentEvent(
        data=_json(event),
        event=getattr(event, "type", None),
        id=None if event_id is None else str(event_id),
    )


async def seed_frames(
    events: AsyncIterator[tuple[int | None, BaseModel]],
) -> AsyncIterator[ServerSentEvent]:
    """The default message stream: every event of a run's log but the internal ones."""
    async for event_id, event in events:
        if not isinstance(event, INTERNAL_EVENTS):
            yield frame(event_id, event)


def group_frames(event_id: int | None, frames: Iterable[tuple[str, str]]) -> bytes:
    """Several frames (``event``, JSON ``data``) made from one event, each with its id, as one
    write: a client that loses the connection has seen all or none of them, so resuming after
    that id neither loses nor repeats one."""
    text_id = None if event_id is None else str(event_id)
    return b"".join(
        ServerSentEvent(data=data, event=event, id=text_id).encode() for event, data in frames
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


def ndjson_response(lines: AsyncIterator[bytes], *, keepalive: float) -> EventSourceResponse:
    """Stream newline-delimited JSON (``lines`` end in ``\\n``); an empty line goes out every
    ``keepalive`` seconds, which NDJSON readers skip. The SSE response is borrowed for its
    keep-alive task (writes never interleave: each chunk is whole lines), its disconnect and
    shutdown handling."""
    return EventSourceResponse(
        lines,
        media_type="application/x-ndjson",
        ping=keepalive,
        ping_message_factory=lambda: b"\n",  # type: ignore[arg-type,return-value]
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
