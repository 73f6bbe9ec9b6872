"""Which wire format a message stream speaks: the default SSE events, or Codex notifications
(``?format=codex`` over SSE, ``Accept: application/x-ndjson`` as NDJSON lines)."""

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query, Request, Response

from opencode.events.codex_wire import codex_notifications, ndjson_lines, sse_frames
from opencode.events.sse import ndjson_response, sse_response
from opencode.services.run import Run

NDJSON = "application/x-ndjson"
STREAM_CONTENT = {
    200: {
        "content": {"text/event-stream": {}, NDJSON: {}},
        "description": "The turn's stream: SSE events, or Codex app-server notifications with "
        "format=codex (SSE) or Accept: application/x-ndjson (one notification a line)",
    }
}


@dataclass(frozen=True)
class StreamWire:
    codex: bool = False
    ndjson: bool = False
    opt_out: frozenset[str] = frozenset()


async def stream_wire(  # a coroutine: no thread-pool hop (see api/deps.py)
    request: Request,
    wire_format: Annotated[
        Literal["codex"] | None,
        Query(
            alias="format",
            description="codex: Codex app-server v2 notifications (JSON-RPC {method, params}) "
            "instead of this server's events; Accept: application/x-ndjson implies it",
        ),
    ] = None,
    opt_out: Annotated[
        list[str] | None,
        Query(
            alias="optOut",
            description="Codex methods not to send, exact match (repeat the parameter), e.g. "
            "rawResponseItem/completed",
        ),
    ] = None,
) -> StreamWire:
    accept = request.headers.get("accept", "")  # read here: OpenAPI ignores Accept parameters
    ndjson = any(kind.split(";")[0].strip().lower() == NDJSON for kind in accept.split(","))
    return StreamWire(
        codex=ndjson or wire_format == "codex", ndjson=ndjson, opt_out=frozenset(opt_out or ())
    )


StreamWireDep = Annotated[StreamWire, Depends(stream_wire)]


def stream_response(run: Run, wire: StreamWire, *, after: int, keepalive: float) -> Response:
    """The run's log from after ``after`` in ``wire``'s format. The Codex encoder is rebuilt by
    reading the log from its start; an ``after`` the run did not issue sends the whole turn."""
    if not wire.codex:
        return sse_response(run.frames(after), keepalive=keepalive)
    seen = after if after and run.issued(after) else 0
    groups = codex_notifications(run.follow(), after=seen, opt_out=wire.opt_out)
    if wire.ndjson:
        return ndjson_response(ndjson_lines(groups), keepalive=keepalive)
    return sse_response(sse_frames(groups), keepalive=keepalive)
