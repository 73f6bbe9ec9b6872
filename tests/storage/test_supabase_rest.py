"""The Supabase REST store's specifics. The contract suites run it against the PostgREST
emulator (``conftest.supabase_backend``); here, respx plays the failures the emulator cannot
(proxies, refused connections, timeouts, rejected keys), and the emulator with its 1000-row
``max_rows`` checks that unbounded reads page through."""

import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import respx

from opencode.storage.supabase_errors import (
    SupabaseConflict,
    SupabaseError,
    SupabaseKeyRejected,
    SupabaseSchemaMissing,
    SupabaseUnavailable,
)
from opencode.storage.supabase_rest import SupabaseStore
from tests.storage.conftest import at, session_record, supabase_backend

URL = "https://abcdefgh.supabase.co"
REST = f"{URL}/rest/v1"
KEY = "sb_secret_this-must-never-appear-in-a-message"


def pgrst(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"code": code, "message": message, "details": None, "hint": None}
    return httpx.Response(status, json=body, headers=headers)


def healthy(mock: respx.MockRouter) -> None:
    """Answer the startup checks: every table exists, and so do the later functions."""
    mock.get(url__regex=rf"^{REST}/\w+").respond(200, json=[])
    mock.post(f"{REST}/rpc/opencode_rest_schema").respond(200, json=1)
    mock.post(f"{REST}/rpc/write_drafts").respond(200, json=[])


@pytest.fixture
async def mock() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def store(mock: respx.MockRouter) -> AsyncIterator[SupabaseStore]:
    """An opened store whose next requests go to routes the test adds (they match first)."""
    healthy(mock)
    opened = SupabaseStore(URL, KEY)
    await opened.initialize()
    mock.routes.clear()
    try:
        yield opened
    finally:
        await opened.close()


def assert_safe(error: Exception) -> None:
    assert "abcdefgh.supabase.co" in str(error)
    assert KEY not in str(error) and "\n" not in str(error)


async def test_a_missing_table_names_the_migration_and_how_to_apply_it(mock) -> None:
    mock.get(f"{REST}/sessions").mock(
        return_value=pgrst(
            404, "PGRST205", "Could not find the table 'public.sessions' in the schema cache"
        )
    )
    healthy(mock)
    store = SupabaseStore(URL, KEY)
    with pytest.raises(SupabaseSchemaMissing) as raised:
        await store.initialize()
    message = str(raised.value)
    assert "20261203000000_initial_schema.sql" in message
    assert "npx supabase db push --db-url" in message and "SQL editor" in message
    assert raised.value.status_code == 503
    assert_safe(raised.value)
    assert await store.ping() is False  # initialize failed: nothing is open


async def test_a_missing_batch_function_names_its_migration(mock) -> None:
    mock.get(url__regex=rf"^{REST}/\w+").respond(200, json=[])
    mock.post(f"{REST}/rpc/opencode_rest_schema").respond(200, json=1)
    missing = "Could not find the function public.write_drafts(p_writes) in the schema cache"
    mock.post(f"{REST}/rpc/write_drafts").mock(return_value=pgrst(404, "PGRST202", missing))
    with pytest.raises(SupabaseSchemaMissing, match="20261205000000_batched_drafts.sql"):
        await SupabaseStore(URL, KEY).initialize()


async def test_a_missing_function_names_the_rest_migration(mock) -> None:
    mock.post(f"{REST}/rpc/opencode_rest_schema").mock(
        return_value=pgrst(404, "PGRST202", "Could not find the function")
    )
    mock.get(url__regex=rf"^{REST}/\w+").respond(200, json=[])  # the tables are there
    with pytest.raises(SupabaseSchemaMissing, match="20261203000001_rest_functions.sql"):
        await SupabaseStore(URL, KEY).initialize()


async def test_a_key_that_is_not_a_jwt_is_rejected_clearly(mock) -> None:
    mock.get(url__regex=rf"^{REST}/\w+").mock(
        return_value=pgrst(401, "PGRST301", "Expected 3 parts in JWT; got 1")
    )
    with pytest.raises(SupabaseKeyRejected) as raised:
        await SupabaseStore(URL, KEY).initialize()
    assert raised.value.status_code == 503  # our configuration, not the caller's credentials
    assert "PGRST301" in str(raised.value) and "service_role key" in str(raised.value)
    assert_safe(raised.value)


async def test_permission_denied_says_the_key_is_not_the_service_key(store, mock) -> None:
    mock.get(f"{REST}/sessions").mock(
        return_value=pgrst(403, "42501", "permission denied for table sessions")
    )
    with pytest.raises(SupabaseKeyRejected, match="service_role key") as raised:
        await store.get_session("ses_1")
    assert_safe(raised.value)


async def test_a_unique_violation_is_a_conflict(store, mock) -> None:
    mock.post(f"{REST}/sessions").mock(
        return_value=pgrst(
            409, "23505", 'duplicate key value violates unique constraint "sessions_pkey"'
        )
    )
    with pytest.raises(SupabaseConflict) as raised:
        await store.create_session(session_record())
    assert raised.value.status_code == 409
    assert_safe(raised.value)


async def test_another_error_keeps_postgrest_code_and_message(store, mock) -> None:
    mock.get(f"{REST}/sessions").mock(return_value=pgrst(400, "PGRST100", "failed to parse"))
    with pytest.raises(SupabaseError, match=r"PGRST100: failed to parse") as raised:
        await store.get_session("ses_1")
    assert raised.value.status_code == 500 and raised.value.extra == {"code": "PGRST100"}


async def test_a_proxy_html_page_is_unavailable(store, mock) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1>cloudflare</body></html>"
    mock.get(f"{REST}/sessions").respond(502, text=page, headers={"content-type": "text/html"})
    with pytest.raises(SupabaseUnavailable, match="502") as raised:
        await store.get_session("ses_1")
    assert raised.value.status_code == 503
    assert_safe(raised.value)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("All connection attempts failed"), httpx.ReadTimeout("timed out")],
    ids=["connect-error", "read-timeout"],
)
async def test_transport_failures_name_the_host_not_the_key(store, mock, failure) -> None:
    route = mock.get(f"{REST}/sessions").mock(side_effect=failure)
    with pytest.raises(SupabaseUnavailable) as raised:
        await store.get_session("ses_1")
    assert type(failure).__name__ in str(raised.value)
    assert str(raised.value).startswith("cannot reach Supabase at abcdefgh.supabase.co")
    assert_safe(raised.value)
    assert route.call_count == 1
    assert await store.ping() is False  # ping never raises


@pytest.mark.parametrize(
    "answer",
    [httpx.ConnectError("refused"), httpx.Response(503, text="busy")],
    ids=["connect-error", "503"],
)
async def test_a_failing_read_is_sent_once(store, mock, answer) -> None:
    """supabase-py retries GETs 3 times with 1 + 2 + 4 s sleeps unless told not to."""
    route = mock.get(f"{REST}/messages")
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    started = time.monotonic()
    with pytest.raises(SupabaseUnavailable):
        await store.get_message("msg_1")
    assert route.call_count == 1 and time.monotonic() - started < 1.0


async def test_requests_carry_the_key_as_apikey_and_bearer(store, mock) -> None:
    route = mock.get(f"{REST}/sessions").respond(200, json=[])
    assert await store.get_session("ses_1") is None
    headers = route.calls.last.request.headers
    assert headers["apikey"] == KEY and headers["authorization"] == f"Bearer {KEY}"


async def test_close_closes_the_client_it_made_but_not_one_it_was_given(mock) -> None:
    healthy(mock)
    given = httpx.AsyncClient()
    store = SupabaseStore(URL, KEY, http=given)
    await store.initialize()
    await store.close()
    assert not given.is_closed
    await given.aclose()

    own = SupabaseStore(URL, KEY)
    await own.initialize()
    http = own._http
    await own.close()
    assert http is not None and http.is_closed


# paging past the hosted max_rows of 1000, against the emulator


async def test_unbounded_reads_page_past_max_rows(request: pytest.FixtureRequest) -> None:
    async with supabase_backend(request) as store:
        session = await store.create_session(session_record())
        await bulk_messages(request.getfixturevalue("supabase_database_url"), session.id, 2345)
        for order in ("asc", "desc"):
            page, total = await store.list_messages(session.id, limit=None, offset=0, order=order)
            expected = list(range(1, 2346))
            assert total == 2345
            assert [m.seq for m in page] == (expected if order == "asc" else expected[::-1])
        page, _ = await store.list_messages(session.id, limit=1500, offset=400, order="desc")
        assert [m.seq for m in page] == list(range(1945, 445, -1))


async def test_a_session_page_larger_than_max_rows_is_complete(
    request: pytest.FixtureRequest,
) -> None:
    async with supabase_backend(request) as store:
        await bulk_sessions(request.getfixturevalue("supabase_database_url"), 1203)
        page, total = await store.list_sessions(limit=1500, offset=100)
        assert total == 1203 and len(page) == 1103
        assert [s.id for s in page] == [f"ses_{n:05d}" for n in range(1102, -1, -1)]
        assert await store.list_sessions(limit=5, offset=5000) == ([], 1203)
        assert await store.list_sessions(limit=0, offset=0) == ([], 1203)


async def bulk_messages(url: str, session_id: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into public.messages (id, session_id, seq, role, status, created_at, "
            "updated_at) select 'msg_' || n, $1, n, 'user', 'completed', $2, $2 "
            "from generate_series(1, $3::int) n",
            session_id,
            at(0),
            count,
        )
        await conn.execute(
            "update public.sessions set message_count = $2 where id = $1", session_id, count
        )
    finally:
        await conn.close()


async def bulk_sessions(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into public.sessions (id, title, created_at, updated_at) "
            "select format('ses_%s', lpad(n::text, 5, '0')), 't', $1, $1::timestamptz + n * interval '1 s' "
            "from generate_series(0, $2::int - 1) n",
            at(0),
            count,
        )
    finally:
        await conn.close()
