"""The ``store`` fixture runs the contract suite once per backend in ``BACKENDS``.

A backend is an async context manager factory taking the test's ``FixtureRequest`` (for
``tmp_path`` or any other fixture it needs) and yielding an initialized, empty ``Store``; every
contract test runs against each one unchanged.

PostgreSQL: one fresh database per test run (``postgres_url``, migrated once, dropped at the
end), emptied before each test. Without a reachable server those tests skip (fail under CI).

Supabase: the REST store with a service_role key, talking to the PostgREST emulator in-process
(``httpx.ASGITransport``) over a database of its own (``supabase_database_url``), migrated the
same way and emptied before each test; it skips or fails with the PostgreSQL tests.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from opencode.core.ids import new_id
from opencode.storage.base import MessageRecord, QuestionRecord, SessionRecord, Store
from opencode.storage.postgres import PostgresStore
from opencode.storage.sqlite import SqliteStore
from opencode.storage.supabase_rest import SupabaseStore
from tests import pg
from tests.fakes.postgrest import PostgrestEmulator, signed_token

T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
TABLES = "sessions, messages, model_usage, todos, questions, compactions"
QUOTA_TABLES = "usage_daily, usage_daily_models, user_limits"
SUPABASE_URL = "http://supabase.test"  # in-process: the ASGI transport ignores the host


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


@asynccontextmanager
async def supabase_backend(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    url = request.getfixturevalue("supabase_database_url")
    await empty_tables(url)
    emulator = PostgrestEmulator(url)  # its pool belongs to this test's event loop
    http = httpx.AsyncClient(transport=httpx.ASGITransport(emulator), timeout=10.0)
    store = SupabaseStore(SUPABASE_URL, signed_token("service_role"), http=http)
    try:
        await store.initialize()
        yield store
    finally:
        await store.close()
        await http.aclose()
        await emulator.aclose()


async def empty_tables(url: str) -> None:
    """DELETE rather than TRUNCATE: a truncate makes new files (~0.1 s); these tables are small."""
    conn = await asyncpg.connect(url)
    try:
        tables = f"{TABLES}, {QUOTA_TABLES}".split(", ")
        await conn.execute("; ".join(f"delete from public.{table}" for table in tables[::-1]))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database for this test run, with the schema applied; dropped at the end."""
    with pg.throwaway_database(migrated=True) as url:
        yield url


@pytest.fixture(scope="session")
def supabase_database_url() -> Iterator[str]:
    """The Supabase backend's database: like ``postgres_url``, but its own."""
    with pg.throwaway_database(migrated=True) as url:
        yield url


Backend = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Store]]
BACKENDS: list[Any] = [
    pytest.param(sqlite_backend, id="sqlite"),
    pytest.param(postgres_backend, id="postgres"),
    pytest.param(supabase_backend, id="supabase"),
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
