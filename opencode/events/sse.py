"""The one place events become Server-Sent Events frames (and the responses that stream
them, NDJSON too)."""

import json
import logging
from collections.abc import AsyncIterator, Iterable

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Send

from opencode.core.text import scrub_json

log = logging.getLogger(__name__)


def encode(event_id: int | None, event: BaseModel) -> bytes:
    """The SSE frame of ``event`` as bytes: made once, written to every stream that sends it."""
    return frame(event_id, event).encode()


def frame(event_id: int | None, event: BaseModel) -> ServerSentEvent:
    """``event: <type>``, ``id: <n>``, ``data: <json with the same type>``."""
    return ServerSentEvent(
        data=_json(event),
        event=getattr(event, "type", None),
        id=None if event_id is None else str(event_id),
    )


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


class FrameStream(EventSourceResponse):
    """sse-starlette's response without its per-event costs. Frames come encoded (bytes pass
    through its encoder untouched), and with no send timeout set (none is: a stalled client
    is found by the keep-alive write and the disconnect listener) a write is a plain ``send``,
    not one inside a new cancel scope (~9 % of the server's CPU per chunk in the profile)."""

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)


def sse_response(
    frames: AsyncIterator[ServerSentEvent | bytes], *, keepalive: float
) -> EventSourceResponse:
    """Stream ``frames``; a ``: ping`` comment goes out every ``keepalive`` seconds.

    ``X-Accel-Buffering: no`` keeps reverse proxies (and the HF Spaces front) from buffering."""
    return FrameStream(
        frames,
        ping=keepalive,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def ndjson_response(lines: AsyncIterator[bytes], *, keepalive: float) -> EventSourceResponse:
    """Stream newline-delimited JSON (``lines`` end in ``\\n``); an empty line goes out every
    ``keepalive`` seconds, which NDJSON readers skip. The SSE response is borrowed for its
    keep-alive task (writes never interleave: each chunk is whole lines), its disconnect and
    shutdown handling."""
    return FrameStream(
        lines,
        media_type="application/x-ndjson",
        ping=keepalive,
        ping_message_factory=lambda: b"\n",  # type: ignore[arg-type,return-value]
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
