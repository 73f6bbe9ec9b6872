"""A session's history as Codex ``ResponseItem``s: the export (a page of messages' items) and
the import (items appended as messages)."""

import asyncio
from typing import Any

from opencode.core.errors import OpencodeError
from opencode.events.bus import EventBus
from opencode.events.codex_import import imported_messages, unsafe_text_path
from opencode.events.codex_items import message_items, turn_id
from opencode.schemas.codex import CodexItemOut, CodexItemPage, CodexItemsImported
from opencode.schemas.codex_schema import SchemaProblem, items_problems
from opencode.schemas.common import UNSAFE_TEXT
from opencode.services.records import new_message, require_session, session_not_found
from opencode.services.runs import RunManager
from opencode.storage.base import Order, Store

_LISTED_PROBLEMS = 10  # in the 422's sentence; ``errors`` has them all


class CodexHistory:
    def __init__(self, *, store: Store, bus: EventBus, runs: RunManager) -> None:
        self._store = store
        self._bus = bus
        self._runs = runs

    async def page(
        self, session_id: str, *, limit: int | None, offset: int, order: Order
    ) -> CodexItemPage:
        """The items of one page of messages (the page ``GET /message`` gives)."""
        await require_session(self._store, session_id)
        records, total = await self._store.list_messages(
            session_id, limit=limit, offset=offset, order=order
        )
        items = [
            CodexItemOut(threadId=session_id, turnId=turn_id(record), item=item)
            for record in records
            for item in message_items(record)
        ]
        return CodexItemPage(items=items, total_count=total, limit=limit, offset=offset)

    async def append(self, session_id: str, items: list[dict[str, Any]]) -> CodexItemsImported:
        """Store ``items`` as messages after the session's last one: all of them or, with a
        422 naming each bad item and field, none; 409 while something runs in the session."""
        # jsonschema tries every ResponseItem branch: a 1 MB history is seconds of CPU
        await asyncio.to_thread(_check, items)
        await require_session(self._store, session_id)
        with self._runs.claim(session_id):
            ids = await self._store_messages(session_id, items)
        for message_id, role in ids:
            self._bus.publish("message.created", session_id=session_id, id=message_id, role=role)
        self._bus.publish("session.updated", id=session_id)
        return CodexItemsImported(
            session_id=session_id, messages=[message_id for message_id, _ in ids], items=len(items)
        )

    async def _store_messages(
        self, session_id: str, items: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        stored: list[tuple[str, str]] = []
        parent: str | None = None
        for message in imported_messages(items):
            record = new_message(
                session_id,
                message.role,
                "completed",
                parts=message.parts,
                content=message.content,
                parent_id=parent if message.role == "assistant" else None,
            )
            try:
                record = await self._store.add_message(record)
            except KeyError:  # the session was deleted meanwhile
                raise session_not_found(session_id) from None
            parent = record.id if record.role == "user" else parent
            stored.append((record.id, record.role))
        return stored


def _check(items: list[dict[str, Any]]) -> None:
    """422 unless every item validates against the seed and holds only text a store takes."""
    problems = items_problems(items)
    for index, item in enumerate(items):
        where = unsafe_text_path(item)
        if where is not None:
            problems.append(SchemaProblem(where, UNSAFE_TEXT, "unsafe_text", index))
    if not problems:
        return
    problems.sort(key=lambda problem: problem.index or 0)
    listed = "; ".join(str(problem) for problem in problems[:_LISTED_PROBLEMS])
    more = len(problems) - _LISTED_PROBLEMS
    raise OpencodeError(
        f"{listed}{f'; and {more} more (see errors)' if more > 0 else ''}. Each item must be a "
        "Codex ResponseItem valid against RawResponseItemCompletedNotification.schema.json; "
        "nothing was stored.",
        status_code=422,
        errors=[
            {
                "loc": ["body", "items", problem.index, *problem.path],
                "msg": problem.message,
                "type": f"codex_schema.{problem.keyword}",
            }
            for problem in problems
        ],
    )
