"""The ``store`` fixture runs the contract suite once per backend in ``BACKENDS``.

A backend is an async context manager factory taking the test's ``FixtureRequest`` (for
``tmp_path`` or any other fixture it needs) and yielding an initialized, empty ``Store``; every
contract test runs against each one unchanged.

PostgreSQL: one fresh database per test run (``postgres_url``, migrated once, dropped at the
end), emptied before each test. Without a reachable server those tests skip (fail under CI).
"""

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from opencode.core.ids import new_id
from opencode.storage.base import MessageRecord, QuestionRecord, SessionRecord, Store
from opencode.storage.postgres import PostgresStore
from opencode.storage.sqlite import SqliteStore
from tests import pg

T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
TABLES = "sessions, messages, model_usage, todos, questions, compactions"


@asynccontextmanager
async def sqlite_backend(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    tmp_path = request.getfixturevalue("tmp_path")
    store = SqliteStore(str(tmp_path / "db" / "contract.db"))
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_backend(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    url = request.getfixturevalue("postgres_url")
    await empty_tables(url)
    store = PostgresStore(url)
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


async def empty_tables(url: str) -> None:
    """DELETE rather than TRUNCATE: a truncate makes new files (~0.1 s); these tables are small."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "; ".join(f"delete from public.{table}" for table in TABLES.split(", ")[::-1])
        )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database for this test run, with the schema applied; dropped at the end."""
    url = pg.create_database_sync()
    try:
        pg.run_sync(lambda: migrated(url))
        yield url
    finally:
        pg.drop_database_sync(url)


async def migrated(url: str) -> None:
    store = PostgresStore(url)
    await store.initialize()
    await store.close()


Backend = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Store]]
BACKENDS: list[Any] = [
    pytest.param(sqlite_backend, id="sqlite"),
    pytest.param(postgres_backend, id="postgres"),
]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    backend: Backend = request.param
    async with backend(request) as opened:
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
