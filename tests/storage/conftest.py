"""The ``store`` fixture runs the contract suite once per backend in ``BACKENDS``.

A backend is an async context manager factory taking pytest's ``tmp_path`` and yielding an
initialized, empty ``Store``; add Postgres here (with its own cleanup) and every contract
test runs against it unchanged.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opencode.core.ids import new_id
from opencode.storage.base import MessageRecord, QuestionRecord, SessionRecord, Store
from opencode.storage.sqlite import SqliteStore

T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)


@asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Store]:
    store = SqliteStore(str(tmp_path / "db" / "contract.db"))
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


Backend = Callable[[Path], AbstractAsyncContextManager[Store]]
BACKENDS: list[Any] = [pytest.param(sqlite_backend, id="sqlite")]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Backend = request.param
    async with backend(tmp_path) as opened:
        yield opened


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def session_record(*, created: float = 0, **overrides: Any) -> SessionRecord:
    fields: dict[str, Any] = {
        "id": new_id("ses"),
        "title": "New session",
        "created_at": at(created),
        "updated_at": at(created),
    }
    return SessionRecord(**(fields | overrides))


def message_record(session_id: str, *, created: float = 0, **overrides: Any) -> MessageRecord:
    fields: dict[str, Any] = {
        "id": new_id("msg"),
        "session_id": session_id,
        "role": "user",
        "created_at": at(created),
        "updated_at": at(created),
        "status": "completed",
        "parts": [{"type": "text", "text": "hello"}],
        "content": "hello",
    }
    return MessageRecord(**(fields | overrides))


def question_record(
    session_id: str, message_id: str, *, created: float = 0, **overrides: Any
) -> QuestionRecord:
    fields: dict[str, Any] = {
        "id": new_id("que"),
        "session_id": session_id,
        "message_id": message_id,
        "call_id": new_id("call"),
        "questions": [{"question": "Which one?", "options": ["a", "b"]}],
        "created_at": at(created),
    }
    return QuestionRecord(**(fields | overrides))
