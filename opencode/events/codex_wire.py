"""The Codex stream on the wire: notifications of a run's log as SSE frames or NDJSON lines.

``codex_notifications`` reads the log from its start through one ``CodexStream``, so a
re-attached stream rebuilds what the client was told and drops what it has seen.
"""

import json
from collections.abc import AsyncIterator

from pydantic import BaseModel

from opencode.core.text import has_unsafe_text, scrub_json
from opencode.events.codex_stream import CodexStream, Notification
from opencode.events.sse import group_frames

Groups = AsyncIterator[tuple[int | None, list[Notification]]]


async def codex_notifications(
    events: AsyncIterator[tuple[int | None, BaseModel]],
    *,
    after: int = 0,
    opt_out: frozenset[str] = frozenset(),
) -> AsyncIterator[tuple[int | None, list[Notification]]]:
    """The notifications of each event of a run's log read from its start, with the event's
    id; those of events up to ``after`` (seen before a re-attach) are dropped."""
    stream = CodexStream(opt_out=opt_out)
    async for event_id, event in events:
        # a log id is the event's time in microseconds (core.ids.EventIds)
        at_ms = None if event_id is None else event_id // 1000
        notifications = stream.encode(event, at_ms=at_ms)
        if notifications and (event_id is None or event_id > after):
            yield event_id, notifications


async def sse_frames(
    groups: AsyncIterator[tuple[int | None, list[Notification]]],
) -> AsyncIterator[bytes]:
    """SSE: ``id:`` the log event's id, ``event:`` the method, ``data:`` the notification."""
    async for event_id, notifications in groups:
        yield group_frames(event_id, [(n["method"], to_json(n)) for n in notifications])


async def ndjson_lines(
    groups: AsyncIterator[tuple[int | None, list[Notification]]],
) -> AsyncIterator[bytes]:
    """NDJSON, as ``codex app-server`` speaks over stdio: one notification a line."""
    async for _, notifications in groups:
        yield "".join(to_json(n) + "\n" for n in notifications).encode()


def to_json(note: Notification) -> str:
    """One line of JSON (UTF-8). Text is scrubbed where it enters the system; should a lone
    surrogate slip through anyway, it becomes U+FFFD instead of breaking the stream."""
    text = json.dumps(note, ensure_ascii=False, separators=(",", ":"))
    if has_unsafe_text(text):
        text = json.dumps(scrub_json(note), ensure_ascii=False, separators=(",", ":"))
    return text
