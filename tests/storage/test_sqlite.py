"""SQLite specifics: pragmas, reopening, migrations, query plans and the URL factory."""

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from opencode.core.errors import OpencodeError
from opencode.core.users import LOCAL_USER_ID
from opencode.storage.factory import create_store
from opencode.storage.migrations import (
    SQLITE_MIGRATIONS,
    Migration,
    check_sequence,
    migrate_sqlite,
    schema_version,
)
from opencode.storage.sqlite import (
    MESSAGE_PAGE_SQL,
    OWNER_SESSION_PAGE_SQL,
    SESSION_PAGE_SQL,
    SqliteStore,
    pending_questions_sql,
)
from opencode.storage.sqlite_rows import to_timestamp
from tests.storage.conftest import at, message_record, question_record, session_record

LATEST = len(SQLITE_MIGRATIONS)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "nested" / "dir" / "store.db")


async def raw(path: str) -> aiosqlite.Connection:
    return await aiosqlite.connect(path, isolation_level=None)


async def plan(db: aiosqlite.Connection, sql: str) -> str:
    rows = await db.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", ("x",) * sql.count("?"))
    return "\n".join(row[3] for row in rows)


async def test_initialize_creates_the_directory_and_turns_on_wal(db_path: str) -> None:
    store = SqliteStore(db_path)
    await store.initialize()
    await store.close()
    db = await raw(db_path)
    try:
        journal = list(await db.execute_fetchall("PRAGMA journal_mode"))
        assert journal[0][0] == "wal"
        assert await schema_version(db) == LATEST
    finally:
        await db.close()


async def test_reopening_keeps_data_and_schema_version(db_path: str) -> None:
    first = SqliteStore(db_path)
    await first.initialize()
    session = await first.create_session(session_record())
    message = await first.add_message(message_record(session.id))
    await first.record_step_usage(session.id, model="m", usage={"input_tokens": 4}, cost=0.1)
    await first.close()

    second = SqliteStore(db_path)
    await second.initialize()
    try:
        assert await second.get_message(message.id) == message
        reopened = await second.get_session(session.id)
        assert (reopened.message_count, reopened.total_cost) == (1, 0.1)
        assert (await second.add_message(message_record(session.id))).seq == 2
    finally:
        await second.close()

    db = await raw(db_path)
    try:
        assert await schema_version(db) == LATEST
        applied = await db.execute_fetchall("SELECT version FROM schema_migrations")
        assert [row[0] for row in applied] == list(range(1, LATEST + 1))
    finally:
        await db.close()


async def test_two_stores_on_one_file_keep_seq_dense(db_path: str) -> None:
    stores = [SqliteStore(db_path), SqliteStore(db_path)]
    for store in stores:
        await store.initialize()
    try:
        session = await stores[0].create_session(session_record())
        added = await asyncio.gather(
            *(stores[i % 2].add_message(message_record(session.id)) for i in range(40))
        )
        assert sorted(m.seq for m in added) == list(range(1, 41))
        assert (await stores[1].get_session(session.id)).message_count == 40
    finally:
        for store in stores:
            await store.close()


async def test_migrations_are_idempotent(db_path: str) -> None:
    Path(db_path).parent.mkdir(parents=True)
    db = await raw(db_path)
    try:
        assert await schema_version(db) == 0
        assert await migrate_sqlite(db) == LATEST
        tables = await db.execute_fetchall("SELECT name, sql FROM sqlite_master ORDER BY name")
        assert await migrate_sqlite(db) == LATEST
        assert await db.execute_fetchall("SELECT name, sql FROM sqlite_master ORDER BY name") == (
            tables
        )
        count = await db.execute_fetchall("SELECT COUNT(*) FROM schema_migrations")
        assert list(count)[0][0] == LATEST
    finally:
        await db.close()


async def test_an_appended_migration_is_applied_once_and_keeps_data(db_path: str) -> None:
    store = SqliteStore(db_path)
    await store.initialize()
    session = await store.create_session(session_record())
    await store.close()
    appended = (
        *SQLITE_MIGRATIONS,
        Migration(LATEST + 1, "session tags", ("ALTER TABLE sessions ADD COLUMN tags TEXT",)),
    )

    db = await raw(db_path)
    try:
        assert await migrate_sqlite(db, appended) == LATEST + 1
        assert await migrate_sqlite(db, appended) == LATEST + 1  # a second ALTER would fail
        rows = await db.execute_fetchall("SELECT id, tags FROM sessions")
        assert [tuple(row) for row in rows] == [(session.id, None)]
    finally:
        await db.close()


async def test_a_failing_migration_rolls_back_entirely(db_path: str) -> None:
    Path(db_path).parent.mkdir(parents=True)
    broken = (
        *SQLITE_MIGRATIONS,
        Migration(LATEST + 1, "broken", ("CREATE TABLE half (a TEXT)", "NOT VALID SQL")),
    )
    db = await raw(db_path)
    try:
        with pytest.raises(aiosqlite.OperationalError):
            await migrate_sqlite(db, broken)
        assert await schema_version(db) == 0
        tables = await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [row[0] for row in tables] == ["schema_migrations"]
    finally:
        await db.close()


async def test_a_database_newer_than_the_code_is_refused(db_path: str) -> None:
    Path(db_path).parent.mkdir(parents=True)
    db = await raw(db_path)
    try:
        newer = (*SQLITE_MIGRATIONS, Migration(LATEST + 1, "future", ("SELECT 1",)))
        await migrate_sqlite(db, newer)
    finally:
        await db.close()
    store = SqliteStore(db_path)
    with pytest.raises(OpencodeError, match="upgrade the server"):
        await store.initialize()


async def test_sessions_from_before_owners_belong_to_the_local_user(db_path: str) -> None:
    Path(db_path).parent.mkdir(parents=True)
    db = await raw(db_path)
    try:
        assert await migrate_sqlite(db, SQLITE_MIGRATIONS[:2]) == 2  # before session owners
        await db.executemany(
            "INSERT INTO sessions (id, title, created_at, updated_at) VALUES (?, 't', ?, ?)",
            [(f"ses_{n}", to_timestamp(at(n)), to_timestamp(at(n))) for n in range(3)],
        )
        await db.execute(
            "INSERT INTO questions (id, session_id, message_id, call_id, questions, status, "
            "created_at) VALUES ('que_old', 'ses_1', 'm', 'c', '[]', 'pending', ?)",
            (to_timestamp(at(5)),),
        )
    finally:
        await db.close()

    store = SqliteStore(db_path)
    await store.initialize()
    try:
        page, total = await store.list_sessions(limit=10, offset=0, user_id=LOCAL_USER_ID)
        assert [s.id for s in page] == ["ses_2", "ses_1", "ses_0"] and total == 3
        assert {s.user_id for s in page} == {LOCAL_USER_ID}
        owned = await store.list_questions(user_id=LOCAL_USER_ID)
        assert [q.id for q in owned] == ["que_old"]
        new = await store.create_session(
            session_record(user_id="0c4d5e6f-0000-4000-8000-000000000001")
        )
        assert (await store.get_session(new.id)).user_id == new.user_id  # not backfilled
        assert (await store.list_sessions(limit=10, offset=0, user_id=LOCAL_USER_ID))[1] == 3
    finally:
        await store.close()


def test_migration_versions_must_be_dense() -> None:
    check_sequence(SQLITE_MIGRATIONS)
    with pytest.raises(ValueError):
        check_sequence([Migration(1, "a", ()), Migration(3, "b", ())])


async def test_page_queries_use_indexes(db_path: str) -> None:
    store = SqliteStore(db_path)
    await store.initialize()
    session = await store.create_session(session_record())
    for _ in range(20):
        message = await store.add_message(message_record(session.id))
    for n in range(10):
        owned = await store.create_session(
            session_record(user_id=f"00000000-0000-4000-8000-00000000000{n % 3}")
        )
        status = "pending" if n % 2 else "answered"
        await store.add_question(question_record(owned.id, message.id, status=status))
    await store.close()
    db = await raw(db_path)
    try:
        await db.execute("ANALYZE")  # the plan must hold with statistics too
        for order, sql in MESSAGE_PAGE_SQL.items():
            message_plan = await plan(db, sql)
            assert "USING INDEX messages_by_seq" in message_plan, order
            assert "SCAN messages" not in message_plan and "TEMP B-TREE" not in message_plan
        session_plan = await plan(db, SESSION_PAGE_SQL)
        assert "sessions_by_recency" in session_plan and "TEMP B-TREE" not in session_plan
        owner_plan = await plan(db, OWNER_SESSION_PAGE_SQL)
        assert "sessions_by_user_recency (user_id=?)" in owner_plan, owner_plan
        assert "TEMP B-TREE" not in owner_plan
        # an owner's pending questions: the pending ones in order, each session by its key
        question_plan = await plan(db, pending_questions_sql(None, "x")[0])
        assert "SCAN questions USING INDEX questions_pending" in question_plan, question_plan
        assert "SEARCH s USING INDEX sqlite_autoindex_sessions_1 (id=?)" in question_plan
        assert "TEMP B-TREE" not in question_plan
    finally:
        await db.close()


async def test_operations_before_initialize_fail_clearly(db_path: str) -> None:
    with pytest.raises(RuntimeError, match="initialize"):
        await SqliteStore(db_path).get_session("ses_x")


# create_store


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./data/opencode.db", "./data/opencode.db"),
        ("sqlite:///data/x.db", "data/x.db"),
        ("sqlite:////srv/data/x.db", "/srv/data/x.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_create_store_parses_sqlite_urls(url: str, path: str) -> None:
    store = create_store(url)
    assert isinstance(store, SqliteStore) and store.path == path


async def test_create_store_file_works_end_to_end(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path}/a/b/app.db")
    await store.initialize()
    try:
        session = await store.create_session(session_record())
        assert await store.get_session(session.id) == session
    finally:
        await store.close()
    assert (tmp_path / "a" / "b" / "app.db").is_file()


async def test_in_memory_store_works() -> None:
    store = create_store("sqlite:///:memory:")
    await store.initialize()
    try:
        session = await store.create_session(session_record())
        assert (await store.add_message(message_record(session.id))).seq == 1
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://project.supabase.co?key=s3cret",
        "mysql://root:s3cret@localhost/db",
        "/just/a/path.db",
    ],
)
def test_create_store_rejects_other_schemes_without_leaking_secrets(url: str) -> None:
    with pytest.raises(OpencodeError) as caught:
        create_store(url)
    assert "sqlite:///" in caught.value.message
    assert "s3cret" not in caught.value.message


@pytest.mark.parametrize("url", ["sqlite://relative.db", "sqlite:///", "sqlite:///x.db?mode=ro"])
def test_create_store_rejects_malformed_sqlite_urls(url: str) -> None:
    with pytest.raises(OpencodeError, match="sqlite:///"):
        create_store(url)
