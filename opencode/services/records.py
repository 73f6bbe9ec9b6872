"""Record helpers every service needs: a session that must exist, a new message."""

from typing import Any, Literal

from opencode.core.errors import NotFound
from opencode.core.ids import new_id, utc_now
from opencode.storage.base import MessageRecord, MessageStatus, SessionRecord, Store


def session_not_found(session_id: str) -> NotFound:
    return NotFound(f"No session with id {session_id}.")


async def require_session(store: Store, session_id: str) -> SessionRecord:
    """The session, or ``NotFound`` (404) naming the id."""
    session = await store.get_session(session_id)
    if session is None:
        raise session_not_found(session_id)
    return session


def new_message(
    session_id: str,
    role: Literal["user", "assistant"],
    status: MessageStatus,
    **fields: Any,
) -> MessageRecord:
    """A message record to add, with both timestamps now and a fresh id (unless ``id`` is
    given: a reply's id is reserved before its turn is built)."""
    now = utc_now()
    return MessageRecord(
        id=fields.pop("id", None) or new_id("msg"),
        session_id=session_id,
        role=role,
        created_at=now,
        updated_at=now,
        status=status,
        parts=fields.pop("parts", []),
        **fields,
    )
