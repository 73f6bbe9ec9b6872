"""PostgreSQL specifics: migrations and the shim, RLS and grants, query plans, pooler settings
and connection errors. (The ``Store`` contract itself runs in the contract suites.)"""

import asyncio
import json
import shutil
import traceback
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from opencode.core.errors import OpencodeError
from opencode.core.users import LOCAL_USER_ID
from opencode.storage.base import CompactionRecord, PartsPatch, StepUsage, Store
from opencode.storage.postgres import (
    MESSAGE_PAGE_SQL,
    OWNER_SESSION_PAGE_SQL,
    SESSION_PAGE_SQL,
    PostgresStore,
    pending_questions_sql,
)
from opencode.storage.postgres_dsn import parse_dsn
from opencode.storage.postgres_migrations import MIGRATIONS_DIR, load_migrations
from tests import pg
from tests.storage.conftest import (
    QUOTA_TABLES,
    TABLES,
    at,
    empty_tables,
    message_record,
    postgres_backend,
    question_record,
    session_record,
)

FUNCTIONS = (
    "add_message",
    "write_draft",
    "write_drafts",
    "record_step_usage",
    "apply_parts_patch",
    "set_todos",
    "add_question",
    "save_compaction",
    "opencode_rest_schema",
    "reserve_tokens",
    "settle_tokens",
)
VERSIONS = [file.version for file in load_migrations()]


@pytest.fixture
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PostgresStore]:
    async with postgres_backend(request) as opened:
        yield opened


@pytest.fixture
async def fresh_url(postgres_url: str) -> AsyncIterator[str]:
    """An empty database of its own (``postgres_url`` first: the roles exist, or we skip)."""
    url = await pg.create_database()
    try:
        yield url
    finally:
        await pg.drop_database(url)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def opened(url: str, **options) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, **options)
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


async def recorded_versions(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("select version from public.opencode_migrations order by version")
    return [row["version"] for row in rows]


# migrations and the shim


async def test_migrations_are_applied_once_and_recorded(fresh_url: str) -> None:
    async with opened(fresh_url) as store:
        session = await store.create_session(session_record())
    async with opened(fresh_url) as store:  # a second start applies nothing
        assert await store.get_session(session.id) == session
    async with connect(fresh_url) as conn:
        rows = await conn.fetch("select version, name from public.opencode_migrations")
        assert [(row["version"], row["name"]) for row in rows] == [
            (file.version, file.name) for file in load_migrations()
        ]
        tables = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public' order by tablename"
        )
        expected = {*TABLES.split(", "), *QUOTA_TABLES.split(", "), "opencode_migrations"}
        assert {row["tablename"] for row in tables} == expected


async def test_two_stores_initialising_at_once_apply_the_schema_once(fresh_url: str) -> None:
    stores = [PostgresStore(fresh_url) for _ in range(3)]
    try:
        await asyncio.gather(*(store.initialize() for store in stores))
        session = await stores[0].create_session(session_record())
        added = await asyncio.gather(
            *(stores[i % 3].add_message(message_record(session.id)) for i in range(30))
        )
        assert sorted(message.seq for message in added) == list(range(1, 31))
    finally:
        for store in stores:
            await store.close()
    async with connect(fresh_url) as conn:
        assert await recorded_versions(conn) == VERSIONS


async def test_the_shim_is_applied_on_vanilla_postgres(postgres_url: str) -> None:
    async with connect(postgres_url) as conn:
        assert await conn.fetchval("select to_regclass('auth.users')") is not None
        roles = await conn.fetch(
            "select rolname, rolbypassrls from pg_roles "
            "where rolname in ('anon', 'authenticated', 'service_role') order by rolname"
        )
        assert [tuple(row) for row in roles] == [
            ("anon", False),
            ("authenticated", False),
            ("service_role", True),
        ]


async def test_the_shim_is_not_applied_where_auth_uid_exists(fresh_url: str) -> None:
    fixed = "00000000-0000-0000-0000-00000000beef"
    async with connect(fresh_url) as conn:  # as on Supabase: auth.uid() is already there
        await conn.execute(
            "create schema auth; "
            f"create function auth.uid() returns uuid language sql as $$ select '{fixed}'::uuid $$"
        )
    async with opened(fresh_url):
        pass
    async with connect(fresh_url) as conn:
        assert await conn.fetchval("select to_regclass('auth.users')") is None
        assert await conn.fetchval("select to_regprocedure('auth.role()')") is None
        assert str(await conn.fetchval("select auth.uid()")) == fixed  # not replaced
        assert await recorded_versions(conn) == VERSIONS


async def test_an_appended_migration_is_applied_once(fresh_url: str, tmp_path: Path) -> None:
    shutil.copytree(MIGRATIONS_DIR, tmp_path, dirs_exist_ok=True)
    async with opened(fresh_url, migrations_dir=tmp_path) as store:
        session = await store.create_session(session_record())
    (tmp_path / "20991231000000_session_tags.sql").write_text(
        "alter table public.sessions add column tags text;"
    )
    for _ in range(2):  # a second ALTER would fail
        async with opened(fresh_url, migrations_dir=tmp_path):
            pass
    async with connect(fresh_url) as conn:
        assert await recorded_versions(conn) == [*VERSIONS, "20991231000000"]
        rows = await conn.fetch("select id, tags from public.sessions")
        assert [tuple(row) for row in rows] == [(session.id, None)]


async def test_a_failing_migration_rolls_back_entirely(fresh_url: str, tmp_path: Path) -> None:
    shutil.copytree(MIGRATIONS_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "20991231000000_broken.sql").write_text(
        "create table public.half (a text); not valid sql;"
    )
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await PostgresStore(fresh_url, migrations_dir=tmp_path).initialize()
    async with connect(fresh_url) as conn:
        assert await conn.fetchval("select to_regclass('public.sessions')") is None
        assert await conn.fetchval("select to_regclass('public.opencode_migrations')") is None


async def test_a_database_newer_than_the_code_is_refused(fresh_url: str) -> None:
    async with opened(fresh_url):
        pass
    async with connect(fresh_url) as conn:
        await conn.execute(
            "insert into public.opencode_migrations (version, name) values ('20991231000000', 'x')"
        )
    with pytest.raises(OpencodeError, match="upgrade the server"):
        await PostgresStore(fresh_url).initialize()


async def test_rows_from_before_owners_belong_to_the_local_user(
    fresh_url: str, tmp_path: Path
) -> None:
    for file in sorted(MIGRATIONS_DIR.glob("*.sql"))[:2]:  # the schema before session owners
        shutil.copy(file, tmp_path)
    alice = str(uuid.uuid4())
    async with opened(fresh_url, migrations_dir=tmp_path) as store, connect(fresh_url) as conn:
        old = await owned_session(store, conn, None)
        # owned, but its rows written before the owner was set: they have none
        late = await owned_session(store, conn, None)
        await conn.execute("update public.sessions set user_id = $1 where id = $2", alice, late)
    async with opened(fresh_url) as store, connect(fresh_url) as conn:
        for table in TABLES.split(", "):
            key = "id" if table == "sessions" else "session_id"
            rows = await conn.fetch(f"select {key}, user_id::text from public.{table} order by 1")
            expected = sorted([(old, LOCAL_USER_ID), (late, alice)])
            assert [tuple(row) for row in rows] == expected, table
        page, total = await store.list_sessions(limit=10, offset=0, user_id=LOCAL_USER_ID)
        assert [s.id for s in page] == [old] and total == 1
        assert [q.session_id for q in await store.list_questions(user_id=alice)] == [late]


async def test_versions_pushed_by_the_supabase_cli_count_as_applied(fresh_url: str) -> None:
    async with opened(fresh_url):
        pass
    async with connect(fresh_url) as conn:  # as if `supabase db push` had applied the schema
        await conn.execute(
            "create schema supabase_migrations; "
            "create table supabase_migrations.schema_migrations "
            "(version text primary key, statements text[], name text); "
            "delete from public.opencode_migrations"
        )
        await conn.executemany(
            "insert into supabase_migrations.schema_migrations (version) values ($1)",
            [(version,) for version in VERSIONS],
        )
    async with opened(fresh_url) as store:  # would fail with "relation already exists"
        assert await store.ping()
    async with connect(fresh_url) as conn:
        assert await recorded_versions(conn) == []


# row level security and grants


@asynccontextmanager
async def acting_as(
    conn: asyncpg.Connection, user_id: uuid.UUID, role: str = "authenticated"
) -> AsyncIterator[None]:
    """Run as PostgREST runs a request with a user's token; everything is rolled back."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"set local role {role}")
        claims = json.dumps({"sub": str(user_id), "role": role})
        await conn.execute("select set_config('request.jwt.claims', $1, true)", claims)
        yield
    finally:
        await transaction.rollback()


async def refused(conn: asyncpg.Connection, sql: str, *params: object) -> None:
    """``sql`` fails with 42501 (permission denied or a policy); the savepoint rolls it back."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with conn.transaction():
            await conn.execute(sql, *params)


async def owned_session(store: Store, conn: asyncpg.Connection, owner: uuid.UUID | None) -> str:
    """A session of ``owner`` with one row in every table."""
    session = await store.create_session(session_record())
    await conn.execute("update public.sessions set user_id = $1 where id = $2", owner, session.id)
    message = await store.add_message(message_record(session.id))
    await store.record_step_usage(session.id, model="m", usage={"input_tokens": 1}, cost=0.1)
    await store.set_todos(session.id, [{"content": "x"}])
    await store.add_question(question_record(session.id, message.id))
    await store.save_compaction(CompactionRecord(session.id, "running", "manual", at(0)))
    return session.id


async def test_rows_inherit_the_sessions_owner_and_rls_hides_other_users(
    store: PostgresStore, postgres_url: str
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    async with connect(postgres_url) as conn:
        mine = await owned_session(store, conn, alice)
        theirs = await owned_session(store, conn, bob)
        for table in TABLES.split(", "):
            owners = await conn.fetch(
                f"select distinct t.user_id = s.user_id as same from public.{table} t "
                "join public.sessions s on s.id = t.session_id"
                if table != "sessions"
                else "select true as same"
            )
            assert [row["same"] for row in owners] == [True], table

        async with acting_as(conn, alice):
            for table in TABLES.split(", "):
                key = "id" if table == "sessions" else "session_id"
                rows = await conn.fetch(f"select {key} from public.{table}")
                assert [row[0] for row in rows] == [mine], table
            stolen = "update public.sessions set title = 'stolen' where id = $1"
            assert await conn.execute(stolen, theirs) == "UPDATE 0"
            assert await conn.execute(stolen, mine) == "UPDATE 1"
            delete = "delete from public.sessions where id = $1"
            assert await conn.execute(delete, theirs) == "DELETE 0"
            forged = (
                "insert into public.sessions (id, user_id, title, created_at, updated_at) "
                "values ('ses_forged', $1, 't', now(), now())"
            )
            await refused(conn, forged, bob)  # RLS: with check
            await refused(conn, "update public.sessions set message_count = 0")  # the store's
            await refused(conn, "update public.messages set content = 'x'")  # no direct writes

        async with acting_as(conn, alice, role="anon"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("select id from public.sessions")

        assert (await store.get_session(theirs)).title == "New session"


async def test_every_table_has_rls_and_nothing_is_granted_to_anon(postgres_url: str) -> None:
    async with connect(postgres_url) as conn:
        tables = await conn.fetch(
            "select c.oid, c.relname, c.relrowsecurity from pg_class c "
            "where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'"
        )
        assert len(tables) == len(f"{TABLES}, {QUOTA_TABLES}".split(", ")) + 1
        for table in tables:
            assert table["relrowsecurity"], table["relname"]
            for privilege in ("select", "insert", "update", "delete"):
                assert not await conn.fetchval(
                    "select has_table_privilege('anon', $1::oid, $2)", table["oid"], privilege
                ), (table["relname"], privilege)


async def test_the_sql_functions_are_for_service_role_only(
    store: PostgresStore, postgres_url: str
) -> None:
    async with connect(postgres_url) as conn:
        functions = await conn.fetch(
            "select p.oid, p.proname, p.prosecdef, p.proconfig from pg_proc p "
            "where p.pronamespace = 'public'::regnamespace"
        )
        assert sorted(row["proname"] for row in functions) == sorted(FUNCTIONS)
        for function in functions:
            assert function["prosecdef"] and function["proconfig"] == ['search_path=""']
            for role, allowed in (
                ("anon", False),
                ("authenticated", False),
                ("service_role", True),
            ):
                assert (
                    await conn.fetchval(
                        "select has_function_privilege($1, $2::oid, 'execute')",
                        role,
                        function["oid"],
                    )
                    is allowed
                ), (function["proname"], role)

        call = "select public.record_step_usage('ses_x', 'm', '{}'::jsonb, 1.0)"
        async with acting_as(conn, uuid.uuid4()):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="record_step_usage"):
                await conn.fetchval(call)
        async with acting_as(conn, uuid.uuid4(), role="service_role"):
            assert await conn.fetchval(call) is False  # callable; the session does not exist


# query plans


async def test_page_queries_read_only_the_page_through_their_indexes(
    store: PostgresStore, postgres_url: str
) -> None:
    async with connect(postgres_url) as conn:
        await conn.execute(
            "insert into public.sessions (id, title, created_at, updated_at, message_count) "
            "select 'ses_' || s, 't', now(), now() - s * interval '1 second', 200 "
            "from generate_series(1, 3000) s"
        )
        # Sessions interleaved, as live traffic writes them: a session's rows are scattered.
        await conn.execute(
            "insert into public.messages "
            "(id, session_id, seq, role, status, parts, usage, created_at, updated_at) "
            "select 'msg_' || s || '_' || n, 'ses_' || s, n, 'user', 'completed', '[]', '{}', "
            "now(), now() from generate_series(1, 200) n, generate_series(1, 20) s"
        )
        await conn.execute("analyze")
        # asyncpg prepares statements, and PostgreSQL switches a prepared statement to a generic
        # plan (one not knowing the parameters) after five runs: both kinds must hold.
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"set plan_cache_mode = {mode}")
            for sql in MESSAGE_PAGE_SQL.values():
                nodes = await analyzed_plan(conn, sql, "ses_7", 100, 120)
                assert_reads_through(nodes, "messages_by_seq", max_rows=20)
            nodes = await analyzed_plan(conn, SESSION_PAGE_SQL, 20, 40)
            assert_reads_through(nodes, "sessions_by_recency", max_rows=60)
            assert "Sort" not in {node["Node Type"] for node in nodes}
    page, total = await store.list_messages("ses_7", limit=20, offset=100, order="asc")
    assert [m.seq for m in page] == list(range(101, 121)) and total == 200


async def test_an_owners_pages_read_only_the_page_through_their_indexes(
    store: PostgresStore, postgres_url: str
) -> None:
    common, rare = "00000000-0000-4000-8000-000000000007", "00000000-0000-4000-8000-0000000000ff"
    async with connect(postgres_url) as conn:
        # 50 owners of 400 sessions each and one owner of 3; a question in every session,
        # pending in 1 of 20 of each owner's (and in all of the rare owner's)
        await conn.execute(
            "insert into public.sessions (id, user_id, title, created_at, updated_at) "
            "select 'ses_' || s, format('00000000-0000-4000-8000-%s', lpad((s % 50)::text, 12, "
            "'0'))::uuid, 't', now(), now() - s * interval '1 second' "
            "from generate_series(1, 20000) s"
        )
        await conn.execute(
            "insert into public.sessions (id, user_id, title, created_at, updated_at) "
            "select 'rare_' || s, $1, 't', now(), now() - s * interval '1 hour' "
            "from generate_series(1, 3) s",
            rare,
        )
        await conn.execute(
            "insert into public.questions "
            "(id, session_id, user_id, message_id, call_id, questions, status, created_at) "
            "select 'que_' || s.id, s.id, s.user_id, 'm', 'c', '[]', "
            "case when s.id like 'rare_%' or (substr(s.id, 5)::int / 50) % 20 = 0 "
            "then 'pending' else 'answered' end, s.updated_at from public.sessions s"
        )
        await conn.execute("analyze")
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"set plan_cache_mode = {mode}")
            for owner in (common, rare):
                nodes = await analyzed_plan(conn, OWNER_SESSION_PAGE_SQL, 20, 40, owner)
                assert_reads_through(nodes, "sessions_by_user_recency", max_rows=60)
                nodes = await analyzed_plan(conn, pending_questions_sql(None, owner)[0], owner)
                assert_reads_through(nodes, "questions_pending_by_user", max_rows=20)
            nodes = await analyzed_plan(conn, OWNER_SESSION_PAGE_SQL, 20, 40, common)
            assert "Sort" not in {node["Node Type"] for node in nodes}
    page, total = await store.list_sessions(limit=20, offset=40, user_id=common)
    assert total == 400 and len(page) == 20 and {s.user_id for s in page} == {common}
    assert len(await store.list_questions(user_id=common)) == 20


async def analyzed_plan(conn: asyncpg.Connection, sql: str, *params: int | str) -> list[dict]:
    """Every node of the plan ``sql`` ran with, as a prepared statement (the way asyncpg runs
    it, so ``plan_cache_mode`` applies)."""
    literals = ", ".join(str(p) if isinstance(p, int) else f"'{p}'" for p in params)
    await conn.execute(f"prepare page as {sql}")
    try:
        explained = await conn.fetchval(f"explain (analyze, format json) execute page ({literals})")
    finally:
        await conn.execute("deallocate page")
    [document] = json.loads(explained)
    nodes, todo = [], [document["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo += node.get("Plans", [])
    return nodes


def assert_reads_through(nodes: list[dict], index: str, *, max_rows: int) -> None:
    """The table is only reached through ``index`` (an index scan, or a bitmap scan of it when
    the rows are scattered over the heap: both are O(page)), and no node handles more than
    ``max_rows`` rows."""
    types = {node["Node Type"] for node in nodes}
    assert "Seq Scan" not in types, types
    assert {node["Index Name"] for node in nodes if "Index Name" in node} == {index}, nodes
    assert types & {"Index Scan", "Bitmap Index Scan"}, types
    assert max(node["Actual Rows"] for node in nodes) <= max_rows, nodes


# connection strings


@pytest.mark.parametrize(
    ("url", "cache_size"),
    [
        ("postgresql://u:pw@db.x.supabase.co:5432/postgres", None),
        ("postgresql://u.ref:pw@aws-0-eu.pooler.supabase.com:6543/postgres", 0),
        ("postgres://u:pw@h:5432/db?pgbouncer=true&connection_limit=1", 0),
        ("postgresql://u:pw@h/db?statement_cache_size=0", 0),
        ("postgresql://u:pw@h/db?statement_cache_size=50&sslmode=require", 50),
        ("postgresql://u:pw@h1:5432,h2:6543/db", 0),
        ("postgresql://u:pw@h/db?port=6543", 0),
    ],
)
def test_pooler_settings_follow_the_url(url: str, cache_size: int | None) -> None:
    assert parse_dsn(url).statement_cache_size == cache_size


def test_options_asyncpg_does_not_know_are_removed_by_name() -> None:
    options = parse_dsn(
        "postgresql://app:p%40ss@db.example.com:6543/postgres"
        "?sslmode=require&pgbouncer=true&connection_limit=1&connect_timeout=3"
        "&application_name=opencode&statement_cache_size=0"
    )
    assert options.dsn == (
        "postgresql://app:p%40ss@db.example.com:6543/postgres"
        "?sslmode=require&application_name=opencode"
    )
    assert options.ignored == ("connection_limit",)
    assert (options.where, options.user, options.connect_timeout) == (
        "db.example.com:6543/postgres",
        "app",
        3.0,
    )
    assert options.scrub("auth failed for p@ss and p%40ss") == "auth failed for *** and ***"
    assert "p@ss" not in repr(options) and "p%40ss" not in repr(options)


@pytest.mark.parametrize(
    "url",
    ["mysql://u:s3cret-pw@h/db", "postgresql://u:s3cret-pw@h/db?statement_cache_size=lots"],
)
def test_an_unusable_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(OpencodeError) as caught:
        PostgresStore(url)
    assert "s3cret-pw" not in caught.value.message and "DATABASE_URL" in caught.value.message


async def test_the_transaction_pooler_setting_turns_prepared_statements_off(
    postgres_url: str,
) -> None:
    await empty_tables(postgres_url)
    for option, prepared in (
        ("", True),
        ("?statement_cache_size=0", False),
        ("?pgbouncer=1", False),
    ):
        async with opened(postgres_url + option, max_size=1) as store:  # one connection
            await contract_basics(store)
            async with store.pool.acquire() as conn:
                named = await conn.fetchval("select count(*) from pg_prepared_statements")
            assert (named > 0) is prepared, option


async def contract_basics(store: PostgresStore) -> None:
    session = await store.create_session(session_record())
    first = await store.add_message(message_record(session.id))
    draft = await store.add_message(message_record(session.id, status="running", parts=[]))
    patch = PartsPatch(keep=0, tail=({"type": "text", "text": "hi"},), content_append="hi")
    step = StepUsage("m", {"input_tokens": 2}, 0.5)
    assert await store.write_draft(session.id, draft.id, patch, usage={}, cost=0.5, step=step)
    page, total = await store.list_messages(session.id, limit=None, offset=0, order="desc")
    assert [m.id for m in page] == [draft.id, first.id] and total == 2
    assert page[0].parts == [{"type": "text", "text": "hi"}]
    assert (await store.get_session(session.id)).total_cost == 0.5
    await store.set_todos(session.id, [{"content": "x"}])
    assert await store.get_todos(session.id) == [{"content": "x"}]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:s3cret-pw@127.0.0.1:1/postgres",  # nothing listens there
        "postgresql://127.0.0.1:1/postgres?user=postgres&password=s3cret-pw",
        "postgresql://no_such_role:s3cret-pw@{server}/postgres",  # the server refuses the login
    ],
)
async def test_connection_errors_name_the_host_never_the_password(
    url: str, postgres_url: str
) -> None:
    store = PostgresStore(url.format(server=pg.server_address()))
    with pytest.raises(OpencodeError) as caught:
        await store.initialize()
    shown = "".join(traceback.format_exception(caught.value))
    assert "127.0.0.1" in caught.value.message and "s3cret-pw" not in shown
    assert not await store.ping()


# errors and lifecycle


async def test_duplicate_ids_are_refused_and_write_nothing(store: PostgresStore) -> None:
    session = await store.create_session(session_record())
    with pytest.raises(asyncpg.UniqueViolationError):
        await store.create_session(session_record(id=session.id, title="again"))
    message = await store.add_message(message_record(session.id))
    before = await store.get_session(session.id)
    with pytest.raises(asyncpg.UniqueViolationError):
        await store.add_message(message_record(session.id, id=message.id))
    assert await store.get_session(session.id) == before  # count and updated_at unchanged
    assert (await store.add_message(message_record(session.id))).seq == 2


async def test_operations_before_initialize_fail_clearly(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    assert not await store.ping()
    with pytest.raises(RuntimeError, match="initialize"):
        await store.get_session("ses_x")
    await store.initialize()
    assert await store.ping()
    await store.close()
    assert not await store.ping()
