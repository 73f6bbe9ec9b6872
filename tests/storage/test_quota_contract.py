"""The daily token quota contract (``reserve_tokens``, ``settle_tokens``, ``daily_usage`` and
the limit overrides), run against every backend; then, on PostgreSQL, what a user's own token
may see and call, and an outage during a reservation."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

import aiosqlite
import asyncpg
import httpx
import pytest

from opencode.core.ids import utc_now
from opencode.storage.base import RESERVATION_TTL, DailyModelUsage, DailyUsage, Store
from opencode.storage.postgres import PostgresStore, PostgresUnavailable
from opencode.storage.sqlite import SqliteStore
from opencode.storage.sqlite_rows import to_timestamp
from opencode.storage.supabase_rest import SupabaseStore
from tests import pg
from tests.fakes.postgrest import PostgrestEmulator, signed_token
from tests.storage.conftest import SUPABASE_URL, postgres_backend
from tests.storage.test_postgres import acting_as, connect

DAY = date(2026, 12, 4)


def new_user() -> str:
    return str(uuid.uuid4())


async def spend(store: Store, user_id: str, tokens: int, *, day: date = DAY, model: str = "m"):
    """A call that reserved nothing and used ``tokens`` (as input)."""
    await store.settle_tokens(
        user_id, day, reserved=0, model=model, input_tokens=tokens, output_tokens=0, cost=0.0
    )


def database_url(request: pytest.FixtureRequest, store: Store) -> str:
    if isinstance(store, PostgresStore):
        return request.getfixturevalue("postgres_url")
    return request.getfixturevalue("supabase_database_url")


async def date_reservations(
    request: pytest.FixtureRequest, store: Store, user_id: str, when: datetime
) -> None:
    """Set the time of the user's latest reservation on ``DAY``, behind the store's back."""
    if isinstance(store, SqliteStore):
        async with aiosqlite.connect(store.path) as db:
            await db.execute(
                "UPDATE usage_daily SET reserved_at = ? WHERE user_id = ? AND day = ?",
                (to_timestamp(when), user_id, DAY.isoformat()),
            )
            await db.commit()
        return
    async with connect(database_url(request, store)) as conn:
        await conn.execute(
            "update public.usage_daily set reserved_at = $1 where user_id = $2 and day = $3",
            when,
            uuid.UUID(user_id),
            DAY,
        )


@asynccontextmanager
async def twin(request: pytest.FixtureRequest, store: Store) -> AsyncIterator[Store]:
    """A second store on the same database with connections of its own: another process."""
    if isinstance(store, SqliteStore):
        other: Store = SqliteStore(store.path)
        await other.initialize()
        try:
            yield other
        finally:
            await other.close()
    elif isinstance(store, PostgresStore):
        other = PostgresStore(request.getfixturevalue("postgres_url"))
        await other.initialize()
        try:
            yield other
        finally:
            await other.close()
    else:
        emulator = PostgrestEmulator(request.getfixturevalue("supabase_database_url"))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(emulator), timeout=10.0)
        other = SupabaseStore(SUPABASE_URL, signed_token("service_role"), http=http)
        try:
            await other.initialize()
            yield other
        finally:
            await other.close()
            await http.aclose()
            await emulator.aclose()


# limits


async def test_a_day_without_usage_reads_as_zeros(store: Store) -> None:
    user_id = new_user()
    assert await store.daily_usage(user_id, DAY) == DailyUsage(day=DAY)
    assert await store.get_user_limit(user_id) is None


async def test_the_default_limit_applies_until_the_user_has_an_override(store: Store) -> None:
    user_id = new_user()
    assert (await store.reserve_tokens(user_id, DAY, 1, default_limit=100)).limit == 100

    await store.set_user_limit(user_id, 500)
    assert await store.get_user_limit(user_id) == 500
    assert (await store.reserve_tokens(user_id, DAY, 1, default_limit=100)).limit == 500
    await store.set_user_limit(user_id, 50)  # replaces the override
    assert await store.get_user_limit(user_id) == 50
    assert (await store.reserve_tokens(user_id, DAY, 1, default_limit=100)).limit == 50

    await store.set_user_limit(user_id, None)
    assert await store.get_user_limit(user_id) is None
    assert (await store.reserve_tokens(user_id, DAY, 1, default_limit=100)).limit == 100
    await store.set_user_limit(user_id, None)  # removing what is not there is fine
    assert await store.get_user_limit(user_id) is None


async def test_a_limit_of_zero_is_unlimited(store: Store) -> None:
    unlimited, exempt = new_user(), new_user()
    await spend(store, unlimited, 10**9)
    for _ in range(2):
        decision = await store.reserve_tokens(unlimited, DAY, 10**9, default_limit=0)
        assert decision.allowed and decision.limit == 0

    await store.set_user_limit(exempt, 0)  # an override of 0 beats a default
    assert await store.get_user_limit(exempt) == 0
    await spend(store, exempt, 1000)
    decision = await store.reserve_tokens(exempt, DAY, 1000, default_limit=10)
    assert (decision.allowed, decision.used, decision.reserved, decision.limit) == (
        True,
        1000,
        1000,
        0,
    )


# reserving and settling


async def test_reservations_count_against_the_limit_until_settled(store: Store) -> None:
    user_id = new_user()
    first = await store.reserve_tokens(user_id, DAY, 30, default_limit=100)
    assert (first.allowed, first.used, first.reserved, first.limit) == (True, 0, 30, 100)
    second = await store.reserve_tokens(user_id, DAY, 50, default_limit=100)
    assert (second.allowed, second.used, second.reserved) == (True, 0, 80)

    await store.settle_tokens(
        user_id, DAY, reserved=30, model="m", input_tokens=20, output_tokens=15, cost=0.25
    )
    assert await store.daily_usage(user_id, DAY) == DailyUsage(
        day=DAY,
        input_tokens=20,
        output_tokens=15,
        total_tokens=35,
        reserved=50,
        cost=0.25,
        requests=1,
        by_model=(DailyModelUsage("m", 20, 15, 35, 0.25, 1),),
    )
    # 35 used + 50 reserved < 100: allowed, though it may end over the limit
    third = await store.reserve_tokens(user_id, DAY, 40, default_limit=100)
    assert (third.allowed, third.used, third.reserved) == (True, 35, 90)
    # 35 + 90 >= 100: refused, and the refusal reserves nothing
    refused = await store.reserve_tokens(user_id, DAY, 1, default_limit=100)
    assert (refused.allowed, refused.used, refused.reserved, refused.limit) == (
        False,
        35,
        90,
        100,
    )
    assert (await store.daily_usage(user_id, DAY)).reserved == 90


async def test_a_day_used_up_to_the_limit_refuses_more(store: Store) -> None:
    user_id = new_user()
    await spend(store, user_id, 99)
    assert (await store.reserve_tokens(user_id, DAY, 5, default_limit=100)).allowed
    await store.settle_tokens(
        user_id, DAY, reserved=5, model="m", input_tokens=1, output_tokens=0, cost=0.0
    )
    refused = await store.reserve_tokens(user_id, DAY, 1, default_limit=100)
    assert (refused.allowed, refused.used, refused.reserved) == (False, 100, 0)


async def test_settling_releases_no_more_than_is_reserved(store: Store) -> None:
    user_id = new_user()
    await store.reserve_tokens(user_id, DAY, 10, default_limit=100)
    await store.settle_tokens(
        user_id, DAY, reserved=25, model="m", input_tokens=3, output_tokens=4, cost=0.5
    )
    usage = await store.daily_usage(user_id, DAY)
    assert (usage.reserved, usage.total_tokens, usage.requests) == (0, 7, 1)


async def test_a_call_that_reserved_nothing_is_recorded(store: Store) -> None:
    user_id = new_user()
    await store.settle_tokens(
        user_id, DAY, reserved=0, model="p/m", input_tokens=7, output_tokens=2, cost=0.125
    )
    await store.settle_tokens(
        user_id, DAY, reserved=0, model="p/m", input_tokens=1, output_tokens=1, cost=0.125
    )
    assert await store.daily_usage(user_id, DAY) == DailyUsage(
        day=DAY,
        input_tokens=8,
        output_tokens=3,
        total_tokens=11,
        cost=0.25,
        requests=2,
        by_model=(DailyModelUsage("p/m", 8, 3, 11, 0.25, 2),),
    )


async def test_models_list_the_largest_total_first_then_by_name(store: Store) -> None:
    user_id = new_user()
    for model, tokens in [("beta", 10), ("alpha", 10), ("Zeta", 10), ("big", 20), ("big", 10)]:
        await spend(store, user_id, tokens, model=model)
    usage = await store.daily_usage(user_id, DAY)
    # ties in byte order ("Z" < "a"), the same on every backend whatever the database's locale
    assert [(row.model, row.total_tokens) for row in usage.by_model] == [
        ("big", 30),
        ("Zeta", 10),
        ("alpha", 10),
        ("beta", 10),
    ]
    assert usage.total_tokens == 60 and usage.requests == 5
    assert [row.requests for row in usage.by_model] == [2, 1, 1, 1]


async def test_amounts_must_not_be_negative(store: Store) -> None:
    user_id = new_user()
    with pytest.raises(ValueError, match="tokens=-1"):
        await store.reserve_tokens(user_id, DAY, -1, default_limit=100)
    with pytest.raises(ValueError, match="default_limit=-5"):
        await store.reserve_tokens(user_id, DAY, 1, default_limit=-5)
    with pytest.raises(ValueError, match="output_tokens=-2"):
        await store.settle_tokens(
            user_id, DAY, reserved=0, model="m", input_tokens=1, output_tokens=-2, cost=0.0
        )
    with pytest.raises(ValueError, match="limit=-1"):
        await store.set_user_limit(user_id, -1)
    assert await store.daily_usage(user_id, DAY) == DailyUsage(day=DAY)
    assert await store.get_user_limit(user_id) is None


# stale reservations


async def test_a_reservation_older_than_the_ttl_stops_counting(
    store: Store, request: pytest.FixtureRequest
) -> None:
    user_id = new_user()
    assert (await store.reserve_tokens(user_id, DAY, 100, default_limit=100)).allowed
    assert not (await store.reserve_tokens(user_id, DAY, 1, default_limit=100)).allowed

    # still within the TTL: it counts
    await date_reservations(
        request, store, user_id, utc_now() - RESERVATION_TTL + timedelta(minutes=1)
    )
    assert (await store.daily_usage(user_id, DAY)).reserved == 100
    assert not (await store.reserve_tokens(user_id, DAY, 1, default_limit=100)).allowed

    # its step died unsettled: it no longer counts, and the next reservation starts afresh
    await date_reservations(
        request, store, user_id, utc_now() - RESERVATION_TTL - timedelta(minutes=1)
    )
    assert (await store.daily_usage(user_id, DAY)).reserved == 0
    decision = await store.reserve_tokens(user_id, DAY, 1, default_limit=100)
    assert (decision.allowed, decision.used, decision.reserved) == (True, 0, 1)
    assert (await store.daily_usage(user_id, DAY)).reserved == 1


async def test_a_refused_reservation_clears_stale_ones(
    store: Store, request: pytest.FixtureRequest
) -> None:
    user_id = new_user()
    await spend(store, user_id, 40)
    assert (await store.reserve_tokens(user_id, DAY, 30, default_limit=50)).allowed
    await spend(store, user_id, 10)  # 50 used: the limit
    await date_reservations(request, store, user_id, utc_now() - 2 * RESERVATION_TTL)
    refused = await store.reserve_tokens(user_id, DAY, 1, default_limit=50)
    assert (refused.allowed, refused.used, refused.reserved) == (False, 50, 0)
    # cleared, not merely ignored: a fresh reservation time does not bring them back
    await date_reservations(request, store, user_id, utc_now())
    assert (await store.daily_usage(user_id, DAY)).reserved == 0


# who and when


async def test_days_are_counted_separately(store: Store) -> None:
    user_id, tomorrow = new_user(), DAY + timedelta(days=1)
    await spend(store, user_id, 100)
    await store.reserve_tokens(user_id, DAY, 5, default_limit=0)
    assert not (await store.reserve_tokens(user_id, DAY, 1, default_limit=100)).allowed

    decision = await store.reserve_tokens(user_id, tomorrow, 1, default_limit=100)
    assert (decision.allowed, decision.used, decision.reserved) == (True, 0, 1)
    assert (await store.daily_usage(user_id, tomorrow)).total_tokens == 0
    usage = await store.daily_usage(user_id, DAY)
    assert (usage.total_tokens, usage.reserved) == (100, 5)


async def test_other_users_are_unaffected(store: Store) -> None:
    alice, bob = new_user(), new_user()
    await store.set_user_limit(alice, 10)
    await spend(store, alice, 10)
    assert not (await store.reserve_tokens(alice, DAY, 1, default_limit=100)).allowed

    decision = await store.reserve_tokens(bob, DAY, 1, default_limit=100)
    assert (decision.allowed, decision.used, decision.reserved, decision.limit) == (
        True,
        0,
        1,
        100,
    )
    assert await store.get_user_limit(bob) is None
    usage = await store.daily_usage(bob, DAY)
    assert (usage.total_tokens, usage.requests, usage.by_model) == (0, 0, ())
    assert (await store.daily_usage(alice, DAY)).total_tokens == 10


# concurrency


async def run_steps(
    stores: list[Store], user_id: str, *, steps: int, reserve: int, actual: int, limit: int
) -> tuple[list[int], int]:
    """``steps`` concurrent model calls (reserve ``reserve``, then settle ``actual``) spread
    over ``stores``: how many live reservations each allowed call saw (its own included), and
    how many calls were refused."""
    seen: list[int] = []
    refused = 0

    async def step(n: int) -> None:
        nonlocal refused
        store = stores[n % len(stores)]
        decision = await store.reserve_tokens(user_id, DAY, reserve, default_limit=limit)
        if not decision.allowed:
            refused += 1
            return
        seen.append(decision.reserved // reserve)
        await asyncio.sleep(0.001 * (n % 5))  # the model call
        await store.settle_tokens(
            user_id, DAY, reserved=reserve, model="m", input_tokens=actual, output_tokens=0, cost=0
        )

    await asyncio.gather(*(step(n) for n in range(steps)))
    return seen, refused


@pytest.mark.parametrize("processes", [1, 2], ids=["one-store", "two-stores"])
async def test_concurrent_calls_reserving_what_they_use_never_pass_the_limit(
    store: Store, request: pytest.FixtureRequest, processes: int
) -> None:
    user_id = new_user()
    async with twin(request, store) as other:
        stores = [store, other][:processes]
        seen, refused = await run_steps(stores, user_id, steps=50, reserve=10, actual=10, limit=200)
    usage = await store.daily_usage(user_id, DAY)
    assert (len(seen), refused) == (20, 30)
    assert (usage.total_tokens, usage.reserved, usage.requests) == (200, 0, 20)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-store", "two-stores"])
async def test_concurrent_overruns_are_bounded_by_the_calls_in_flight(
    store: Store, request: pytest.FixtureRequest, processes: int
) -> None:
    user_id, reserve, actual, limit = new_user(), 10, 15, 200
    async with twin(request, store) as other:
        stores = [store, other][:processes]
        seen, refused = await run_steps(
            stores, user_id, steps=50, reserve=reserve, actual=actual, limit=limit
        )
    usage = await store.daily_usage(user_id, DAY)
    assert usage.total_tokens == actual * len(seen) and usage.reserved == 0
    assert refused > 0 and usage.total_tokens >= limit
    # The last call allowed saw used + reserved < limit before its own reservation; each call
    # still running then could overrun its reservation, and nothing was allowed after it.
    in_flight = max(seen)
    assert usage.total_tokens < limit + reserve + (actual - reserve) * in_flight
    assert not (await store.reserve_tokens(user_id, DAY, 1, default_limit=limit)).allowed


# PostgreSQL: a user's own token, and outages


@pytest.fixture
async def postgres_store(request: pytest.FixtureRequest) -> AsyncIterator[PostgresStore]:
    async with postgres_backend(request) as opened:
        yield opened


async def test_users_read_only_their_own_usage_and_cannot_call_the_functions(
    postgres_store: PostgresStore, postgres_url: str
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    for user_id, model in ((alice, "a"), (bob, "b")):
        await postgres_store.reserve_tokens(str(user_id), DAY, 5, default_limit=100)
        await spend(postgres_store, str(user_id), 3, model=model)
        await postgres_store.set_user_limit(str(user_id), 1000)

    async with connect(postgres_url) as conn:
        async with acting_as(conn, alice):
            for table in ("usage_daily", "usage_daily_models", "user_limits"):
                rows = await conn.fetch(f"select user_id from public.{table}")
                assert [row["user_id"] for row in rows] == [alice], table
            for statement in (
                "update public.usage_daily set input_tokens = 0",
                "delete from public.usage_daily_models",
                "update public.user_limits set daily_token_limit = 0",
                f"insert into public.user_limits values ('{alice}', 0, now())",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with conn.transaction():
                        await conn.execute(statement)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="reserve_tokens"):
                async with conn.transaction():
                    await conn.fetch(
                        "select * from public.reserve_tokens($1, $2, 1, 0, now(), '1 minute')",
                        alice,
                        DAY,
                    )
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="settle_tokens"):
                async with conn.transaction():
                    await conn.execute(
                        "select public.settle_tokens($1, $2, 0, 'm', 1, 1, 0, now())", alice, DAY
                    )
        async with acting_as(conn, alice, role="anon"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("select user_id from public.usage_daily")

    for user_id in (alice, bob):
        usage = await postgres_store.daily_usage(str(user_id), DAY)
        assert (usage.total_tokens, usage.reserved) == (3, 5)


async def test_a_reservation_during_an_outage_is_store_unavailable(postgres_url: str) -> None:
    url = await pg.create_migrated_database()
    name = urlsplit(url).path.lstrip("/")
    store = PostgresStore(url)
    await store.initialize()
    admin = await pg.admin_connection()
    try:
        await admin.execute(f'alter database "{name}" allow_connections false')
        await admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1", name
        )
        await asyncio.sleep(0.2)  # the pool's connection reads its termination notice
        with pytest.raises(PostgresUnavailable, match="PostgreSQL"):
            await store.reserve_tokens(new_user(), DAY, 1, default_limit=10)
        with pytest.raises(PostgresUnavailable):
            await store.daily_usage(new_user(), DAY)
    finally:
        await admin.execute(f'alter database "{name}" allow_connections true')
        await admin.close()
        await store.close()
        await pg.drop_database(url)
