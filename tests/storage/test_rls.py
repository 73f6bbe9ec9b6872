"""Row level security and grants, as a Supabase user meets them: PostgREST runs a request with a
user's token as role ``authenticated`` with the token's claims in ``request.jwt.claims``; here
the same ``set local role`` and ``set_config`` run on a throwaway database set up the way a
Supabase project is (see ``postgres_url``), with every migration applied. Without a PostgreSQL
server these tests skip, or fail under CI=true. The rows are written by the store, as the server
writes them, so this also checks that every row carries its session's owner."""

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from opencode.core.users import LOCAL_USER_ID
from opencode.storage.base import CompactionRecord
from opencode.storage.postgres import PostgresStore
from opencode.storage.postgres_migrations import SHIM_PATH
from tests import pg
from tests.storage.conftest import (
    TABLES,
    at,
    message_record,
    postgres_backend,
    question_record,
    session_record,
)

# How a row of each table is named in the expected sets below.
KEYS = {
    "sessions": "id",
    "messages": "id",
    "model_usage": "session_id || '/' || model",
    "todos": "session_id",
    "questions": "id",
    "compactions": "session_id",
}
OwnedRows = dict[str, dict[str, set[str]]]  # owner -> table -> row keys
# What a hosted Supabase project grants on everything created in public (its default
# privileges): the migrations must revoke what they do not mean to grant.
SUPABASE_DEFAULT_PRIVILEGES = """
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"""
TABLE_PRIVILEGES = ("select", "insert", "update", "delete", "truncate", "references", "trigger")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """This module's database (it replaces the suite's): Supabase's roles and auth schema (the
    shim), Supabase's default privileges, then the migrations, as the store applies them."""
    with pg.throwaway_database() as url:
        pg.run_sync(lambda: _as_supabase_then_migrated(url))
        yield url


async def _as_supabase_then_migrated(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SHIM_PATH.read_text("utf-8"))
        await conn.execute(SUPABASE_DEFAULT_PRIVILEGES)
    finally:
        await conn.close()
    store = PostgresStore(url)  # finds auth.uid(), so applies the migrations only
    await store.initialize()
    await store.close()


@pytest.fixture
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PostgresStore]:
    async with postgres_backend(request) as opened:
        yield opened


@pytest.fixture
async def conn(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the database owner (RLS does not apply to it)."""
    connection = await asyncpg.connect(postgres_url)
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def requested(
    conn: asyncpg.Connection, role: str, sub: str | None = None
) -> AsyncIterator[None]:
    """Run as PostgREST runs a request whose token has ``role`` (and user ``sub``), in a
    transaction that is rolled back after."""
    claims: dict[str, Any] = {"role": role} | ({} if sub is None else {"sub": sub})
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"set local role {role}")
        await conn.execute("select set_config('request.jwt.claims', $1, true)", json.dumps(claims))
        yield
    finally:
        await transaction.rollback()


def as_user(conn: asyncpg.Connection, user_id: str) -> Any:
    return requested(conn, "authenticated", user_id)


async def refused(conn: asyncpg.Connection, sql: str, *params: object) -> None:
    """``sql`` fails with 42501 (no grant, or a policy's check); its savepoint undoes it."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with conn.transaction():
            await conn.execute(sql, *params)


async def owned_rows(store: PostgresStore, owners: list[str | None]) -> OwnedRows:
    """Two sessions per owner (None: no owner), each with rows in every table, written through
    the store; what each owner should see of every table."""
    rows: OwnedRows = {}
    for number, owner in enumerate(owners * 2):
        session = await store.create_session(session_record(created=number, user_id=owner))
        first = await store.add_message(message_record(session.id))
        second = await store.add_message(message_record(session.id, role="assistant"))
        for model in ("openai/gpt-4o", "anthropic/claude"):
            await store.record_step_usage(session.id, model=model, usage={}, cost=0.1)
        await store.set_todos(session.id, [{"content": "x", "status": "pending"}])
        question = question_record(session.id, second.id)
        await store.add_question(question)
        await store.save_compaction(CompactionRecord(session.id, "completed", "manual", at(1)))
        mine = rows.setdefault(str(owner), {table: set() for table in KEYS})
        mine["sessions"].add(session.id)
        mine["messages"] |= {first.id, second.id}
        mine["model_usage"] |= {f"{session.id}/openai/gpt-4o", f"{session.id}/anthropic/claude"}
        mine["todos"].add(session.id)
        mine["questions"].add(question.id)
        mine["compactions"].add(session.id)
    return rows


async def visible(conn: asyncpg.Connection) -> dict[str, set[str]]:
    found = {}
    for table, key in KEYS.items():
        found[table] = {row[0] for row in await conn.fetch(f"select {key} from public.{table}")}
    return found


async def test_a_user_reads_exactly_their_own_rows_of_every_table(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    rows = await owned_rows(store, [alice, bob, LOCAL_USER_ID, None])
    assert set(KEYS) == set(TABLES.split(", "))
    everything = await visible(conn)
    for table in KEYS:
        assert everything[table] == set().union(*(owned[table] for owned in rows.values()))
    for user, other in ((alice, bob), (bob, alice), (LOCAL_USER_ID, alice)):
        async with as_user(conn, user):
            assert await visible(conn) == rows[user], user
            theirs = sorted(rows[other]["sessions"])  # asked for by key: still nothing
            for table in KEYS:
                column = "id" if table == "sessions" else "session_id"
                found = await conn.fetchval(
                    f"select count(*) from public.{table} where {column} = any($1)", theirs
                )
                assert found == 0, (user, table)
    async with as_user(conn, str(uuid.uuid4())):  # a user with no sessions
        assert await visible(conn) == {table: set() for table in KEYS}


async def test_a_token_without_a_user_or_an_anon_one_sees_nothing(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    await owned_rows(store, [LOCAL_USER_ID, None])
    async with requested(conn, "authenticated"):  # no sub: auth.uid() is null
        assert await visible(conn) == {table: set() for table in KEYS}
    async with requested(conn, "anon"):
        for table in KEYS:
            await refused(conn, f"select 1 from public.{table}")


async def test_a_user_changes_only_their_own_sessions(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    rows = await owned_rows(store, [alice, bob])
    mine, theirs = sorted(rows[alice]["sessions"]), sorted(rows[bob]["sessions"])
    create = (
        "insert into public.sessions (id, user_id, title, created_at, updated_at) "
        "values ($1, $2, 't', now(), now())"
    )
    async with as_user(conn, alice):
        rename = "update public.sessions set title = 'renamed' where id = $1"
        assert await conn.execute(rename, mine[0]) == "UPDATE 1"
        assert await conn.execute(rename, theirs[0]) == "UPDATE 0"
        assert await conn.execute("update public.sessions set title = 'all'") == "UPDATE 2"
        await conn.execute(create, "ses_alice_new", alice)
        await refused(conn, create, "ses_for_bob", bob)  # the insert policy's check
        await refused(conn, create, "ses_for_nobody", None)
        # the owner is not a column users may set: no giving a session away, or taking one
        await refused(conn, "update public.sessions set user_id = $1 where id = $2", bob, mine[0])
        await refused(conn, "update public.sessions set message_count = 0")  # the store's
        for table in KEYS.keys() - {"sessions"}:  # rows the store writes, never a user
            await refused(conn, f"update public.{table} set session_id = session_id")
            await refused(conn, f"delete from public.{table}")
        await refused(
            conn,
            "insert into public.todos (session_id, user_id, todos) values ($1, $2, '[]')",
            mine[0],
            alice,
        )
        delete = "delete from public.sessions where id = $1"
        assert await conn.execute(delete, theirs[0]) == "DELETE 0"
        assert await conn.execute(delete, mine[1]) == "DELETE 1"
        left = await visible(conn)
        assert mine[1] not in left["todos"] and mine[0] in left["todos"]  # its rows went with it
        await conn.execute("set local role none")  # back to the owner, inside the transaction
        assert theirs[0] in (await visible(conn))["sessions"]
    async with as_user(conn, bob):
        assert await visible(conn) == rows[bob]
        titles = await conn.fetch("select distinct title from public.sessions")
        assert [row[0] for row in titles] == ["New session"]


async def test_the_stores_functions_are_refused_to_users_and_anon(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    functions = await conn.fetch(
        "select p.proname, array(select format_type(t, null) "
        "from unnest(p.proargtypes::oid[]) with ordinality as a (t, n) order by n) "
        "from pg_proc p where p.pronamespace = 'public'::regnamespace order by 1"
    )
    assert {"add_message", "write_draft", "set_todos"} <= {name for name, _ in functions}
    calls = [
        f"select public.{name}({', '.join(f'null::{kind}' for kind in kinds)})"
        for name, kinds in functions
    ]
    for role, sub in (("authenticated", str(uuid.uuid4())), ("anon", None)):
        async with requested(conn, role, sub):
            for call in calls:
                await refused(conn, call)
    async with requested(conn, "service_role"):
        for call in calls:  # whatever nulls make a function do, it is not "permission denied"
            try:
                async with conn.transaction():
                    await conn.execute(call)
            except asyncpg.InsufficientPrivilegeError:
                pytest.fail(f"service_role may not run {call}")
            except asyncpg.PostgresError:
                pass


async def test_users_have_only_the_grants_the_migrations_give(conn: asyncpg.Connection) -> None:
    """Whatever Supabase's defaults granted: anon nothing; users read what they own, and of
    sessions also create, rename and delete them."""
    tables = await conn.fetch(
        "select c.oid, c.relname from pg_class c "
        "where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'"
    )
    assert set(KEYS) <= {row["relname"] for row in tables}
    for table in tables:
        granted = {
            privilege
            for privilege in TABLE_PRIVILEGES
            if await conn.fetchval(
                "select has_table_privilege('authenticated', $1::oid, $2)", table["oid"], privilege
            )
        }
        expected = {"select", "delete"} if table["relname"] == "sessions" else {"select"}
        if table["relname"] in KEYS:
            assert granted == expected, table["relname"]
        for privilege in TABLE_PRIVILEGES:
            assert not await conn.fetchval(
                "select has_table_privilege('anon', $1::oid, $2)", table["oid"], privilege
            ), (table["relname"], privilege)
    columns = await conn.fetch(
        "select privilege_type, array_agg(column_name::text order by column_name::text) "
        "from information_schema.column_privileges where grantee = 'authenticated' "
        "and table_schema = 'public' and table_name = 'sessions' "
        "and privilege_type in ('INSERT', 'UPDATE') group by 1 order by 1"
    )
    assert [tuple(row) for row in columns] == [
        ("INSERT", ["created_at", "id", "model", "title", "updated_at", "user_id"]),
        ("UPDATE", ["model", "title", "updated_at"]),
    ]


async def test_no_sequence_is_granted_to_users_or_anon(conn: asyncpg.Connection) -> None:
    sequences = await conn.fetch(
        "select c.oid, c.relname from pg_class c "
        "where c.relnamespace = 'public'::regnamespace and c.relkind = 'S'"
    )
    assert "model_usage_first_use_seq" in {row["relname"] for row in sequences}
    for sequence in sequences:
        for role in ("anon", "authenticated"):
            for privilege in ("usage", "select", "update"):
                assert not await conn.fetchval(
                    "select has_sequence_privilege($1, $2::oid, $3)",
                    role,
                    sequence["oid"],
                    privilege,
                ), (sequence["relname"], role, privilege)
