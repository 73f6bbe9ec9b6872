"""``/session/{id}/items``: the history as Codex / OpenAI Responses items, out and in."""

from fastapi import APIRouter, Depends, status

from opencode.api.deps import HistoryDep
from opencode.api.errors import error_responses
from opencode.api.routes.sessions import (
    NO_SESSION,
    READ,
    PageLimit,
    PageOffset,
    PageOrder,
    owned_session,
)
from opencode.schemas.codex import CodexItemPage, CodexItemsImported, CodexItemsIn
from opencode.schemas.common import SafeStr

router = APIRouter(
    prefix="/session/{session_id}", tags=["sessions"], dependencies=[Depends(owned_session)]
)


@router.get("/items", responses=READ)
async def list_items(
    session_id: SafeStr,
    history: HistoryDep,
    limit: PageLimit = None,
    offset: PageOffset = 0,
    order: PageOrder = "asc",
) -> CodexItemPage:
    """The history as Codex / OpenAI Responses ``ResponseItem``s, each with the
    ``threadId``/``turnId`` of ``rawResponseItem/completed``. Pages count **messages**, exactly
    as ``GET /session/{id}/message`` does (same ``limit``, ``offset``, ``order``;
    ``total_count`` is the message count): a page holds every item of its messages, so it can
    hold more or fewer items than ``limit``. Within a message the items keep history order."""
    return await history.page(session_id, limit=limit, offset=offset, order=order)


@router.post(
    "/items",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        notes={
            **NO_SESSION,
            409: "conflict: a turn, a compaction or another import runs in the session",
            422: "validation_error: an item is not a valid ResponseItem; errors name the item "
            "(loc: body, items, index, field) and nothing is stored",
        },
    ),
)
async def import_items(
    session_id: SafeStr, body: CodexItemsIn, history: HistoryDep
) -> CodexItemsImported:
    """Append a Codex / Responses history: a user ``message`` becomes a user message and the
    items up to the next one an assistant message (text, reasoning, tool calls with their
    outputs); items this server cannot run are kept as they were (``item`` parts), exported
    unchanged and shown to the model as text."""
    return await history.append(session_id, body.items)
