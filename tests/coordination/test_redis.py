"""What only the Redis backend has: key layout and lifetimes, connections, the control stream."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
from redis.asyncio import Redis

from opencode.coordination.holding import Holding
from opencode.coordination.redis_clients import Keys
from opencode.coordination.redis_coordinator import RedisCoordinator
from opencode.coordination.redis_event_log import RedisEventLog
from tests.coordination.conftest import REDIS_URL, TTL_MS, clients


@pytest.fixture
def backend() -> str:
    return "redis"


@pytest.fixture
async def admin(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def named_connections(admin: Redis, name: str) -> int:
    return sum(1 for client in await admin.client_list() if client.get("name") == name)


async def test_keys_carry_the_session_hash_tag_and_expire(redis_prefix: str, admin: Redis) -> None:
    made = clients(redis_prefix)
    coordinator = RedisCoordinator(made, prefix=redis_prefix, ttl_ms=TTL_MS)
    log = RedisEventLog(made, prefix=redis_prefix, running_ttl_ms=60_000, ended_ttl_ms=5_000)
    try:
        lease = await coordinator.claim("ses_1", "run_1")
        assert lease is not None
        await log.append("ses_1", "e1")
        keys = Keys(redis_prefix)
        assert 0 < await admin.pttl(keys.lease("ses_1")) <= TTL_MS
        assert 55_000 < await admin.pttl(keys.events("ses_1")) <= 60_000
        await log.append("ses_1", "done", final=True)
        assert 0 < await admin.pttl(keys.events("ses_1")) <= 5_000  # ended: kept an hour in prod
        assert 0 < await admin.pttl(keys.events_meta("ses_1")) <= 5_000
        assert await coordinator.request_abort("ses_1", "run_1")
        assert 0 < await admin.ttl(keys.abort("ses_1", "run_1")) <= 600
        ours = [key async for key in admin.scan_iter(match=f"{redis_prefix}:*")]
        per_session = [k for k in ours if b"ses_1" in k]
        assert per_session and all(b"{ses_1}" in k for k in per_session)
        assert await coordinator.release(lease)
        assert not await admin.exists(keys.lease("ses_1"), keys.abort("ses_1", "run_1"))
    finally:
        await coordinator.aclose()
        await made.aclose()


async def test_a_cancelled_follow_leaks_no_connection(redis_prefix: str, admin: Redis) -> None:
    """Followers cancelled while blocked in XREAD (pitfall 7): the pool stays usable and,
    once closed, no connection of this process is left on the server."""
    made = clients(redis_prefix)
    log = RedisEventLog(made, prefix=redis_prefix)
    followers = [asyncio.ensure_future(_drain(log, f"ses_{n}")) for n in range(20)]
    await asyncio.sleep(0.1)  # all blocked in XREAD
    assert await named_connections(admin, redis_prefix) >= 20
    for follower in followers:
        follower.cancel()
    await asyncio.gather(*followers, return_exceptions=True)
    ids = [await log.append("ses_0", f"e{n}") for n in range(3)]
    assert [e.id for e in await log.read("ses_0")] == ids  # no reply went to a wrong caller
    await made.aclose()
    await asyncio.sleep(0.05)
    assert await named_connections(admin, redis_prefix) == 0


async def test_an_abort_whose_wake_up_is_lost_arrives_with_the_heartbeat(
    redis_prefix: str, admin: Redis
) -> None:
    owner_clients, other_clients = clients(redis_prefix), clients(redis_prefix)
    owner = RedisCoordinator(owner_clients, instance_id="A", prefix=redis_prefix, ttl_ms=TTL_MS)
    other = RedisCoordinator(other_clients, instance_id="B", prefix=redis_prefix, ttl_ms=TTL_MS)
    try:
        lease = await owner.claim("ses_1", "run_1")
        assert lease is not None
        async with Holding(owner, lease, renew_every=0.1) as holding:
            await admin.delete(Keys(redis_prefix).control("A"))
            await admin.set(Keys(redis_prefix).control("A"), "not a stream")  # XADD fails
            assert await other.request_abort("ses_1", "run_1")  # the record is enough
            await asyncio.wait_for(holding.aborted.wait(), 0.5)
    finally:
        await owner.aclose()
        await other.aclose()
        await owner_clients.aclose()
        await other_clients.aclose()


async def _drain(log: RedisEventLog, session_id: str) -> None:
    async with aclosing(log.follow(session_id)) as events:
        async for _ in events:
            pass
