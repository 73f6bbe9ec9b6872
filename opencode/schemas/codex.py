"""A session's history as Codex / OpenAI Responses ``ResponseItem``s: export and import."""

from typing import Any

from pydantic import BaseModel, Field

ITEM = (
    "A ResponseItem as in Codex's RawResponseItemCompletedNotification schema (the project's "
    "seed): message, reasoning, function_call, function_call_output, compaction, ... Tool "
    'outputs use the object form {"body": ..., "success": ...}'
)


class CodexItemOut(BaseModel):
    """One item with where it belongs: the params of Codex's ``rawResponseItem/completed``."""

    threadId: str = Field(description="The session id")
    turnId: str = Field(
        description="The id of the user message that started the turn the item belongs to"
    )
    item: dict[str, Any] = Field(description=ITEM)


class CodexItemPage(BaseModel):
    items: list[CodexItemOut] = Field(
        description="The items of this page's messages, in history order within each message"
    )
    total_count: int = Field(description="Messages in the session (pages count messages)")
    limit: int | None
    offset: int


class CodexItemsIn(BaseModel):
    items: list[dict[str, Any]] = Field(
        min_length=1,
        description=f"Items to append, in history order. {ITEM}. Each must validate against "
        "the schema (422 names the index and the field otherwise; nothing is stored)",
    )


class CodexItemsImported(BaseModel):
    session_id: str
    messages: list[str] = Field(description="The ids of the messages stored, in order")
    items: int = Field(description="How many items were imported")
