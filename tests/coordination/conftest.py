"""The coordination contract suites run once per backend: ``memory`` and ``redis``.

Fixtures hand out *pairs*, ``(a, b)``, standing for two processes. On ``memory`` both are the
same object (one process is all it serves); on ``redis`` each has its own clients and
instance id, on 127.0.0.1:6379 db 0 under a key prefix unique to the test, whose keys are
deleted afterwards. Without a reachable Redis the redis tests skip (fail under CI).
"""

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from opencode.coordination.base import Coordinator, EventLog
from opencode.coordination.memory import MemoryCoordinator, MemoryEventLog
from opencode.coordination.redis_clients import RedisClients
from opencode.coordination.redis_coordinator import RedisCoordinator
from opencode.coordination.redis_event_log import RedisEventLog

REDIS_URL = "redis://127.0.0.1:6379/0"
TTL_MS = 300  # short leases: expiry is part of the contract
BLOCK_MS = 200  # short XREAD BLOCK loops keep teardown and quiet-stream tests fast


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def redis_prefix(backend: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"octest-{uuid.uuid4().hex[:12]}"
    if backend != "redis":
        yield prefix
        return
    admin = Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        await admin.ping()
    except (RedisError, OSError) as error:
        await admin.aclose()
        message = f"Redis is not reachable at {REDIS_URL} ({error}); start redis-server"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield prefix
    finally:
        keys = [key async for key in admin.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


def clients(prefix: str) -> RedisClients:
    """One "process": its own connections, named after the test so leaks can be counted."""
    return RedisClients.from_url(REDIS_URL, block_ms=BLOCK_MS, client_name=prefix)


@pytest.fixture
async def coordinators(
    backend: str, redis_prefix: str
) -> AsyncIterator[tuple[Coordinator, Coordinator]]:
    if backend == "memory":
        coordinator = MemoryCoordinator(ttl_ms=TTL_MS)
        yield coordinator, coordinator
        await coordinator.aclose()
        return
    pair = [clients(redis_prefix), clients(redis_prefix)]
    made = [
        RedisCoordinator(c, instance_id=f"inst{n}", prefix=redis_prefix, ttl_ms=TTL_MS)
        for n, c in enumerate(pair)
    ]
    try:
        yield made[0], made[1]
    finally:
        for coordinator in made:
            await coordinator.aclose()
        for c in pair:
            await c.aclose()


@pytest.fixture
async def event_logs(backend: str, redis_prefix: str) -> AsyncIterator[tuple[EventLog, EventLog]]:
    if backend == "memory":
        log = MemoryEventLog(bus_maxlen=100)
        yield log, log
        await log.aclose()
        return
    pair = [clients(redis_prefix), clients(redis_prefix)]
    made = [RedisEventLog(c, prefix=redis_prefix, bus_maxlen=100) for c in pair]
    try:
        yield made[0], made[1]
    finally:
        for log in made:
            await log.aclose()
        for c in pair:
            await c.aclose()
