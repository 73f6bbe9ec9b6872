"""Throwaway PostgreSQL databases for tests: ``create_database()`` makes a fresh, empty one and
returns its URL; ``drop_database(url)`` removes it (closing any connection left on it).

The server is ``OPENCODE_TEST_POSTGRES_URL`` (by default the local one, trust auth, user
``postgres``). When it cannot be reached the calling test is skipped, or failed under
``CI=true``: CI must not go green by running none of the PostgreSQL tests.

The ``*_sync`` variants run on a private event loop in a worker thread, so they are safe in
synchronous fixtures (and even while another loop runs in this thread).
"""

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_URL = os.environ.get(
    "OPENCODE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PREFIX = "opencode_test_"
CONNECT_TIMEOUT = 5.0

T = TypeVar("T")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``CI=true``."""
    message = f"PostgreSQL at {_where(ADMIN_URL)} is not available ({reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(message)


async def admin_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        unavailable(f"{type(exc).__name__}: {exc}")


async def create_database() -> str:
    """A new empty database (``opencode_test_<random>``); its URL."""
    name = f"{PREFIX}{secrets.token_hex(6)}"
    conn = await admin_connection()
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    return database_url(name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith(PREFIX):  # never drop a database these helpers did not make
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    conn = await admin_connection()
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


def server_address() -> str:
    """``host:port`` of the test server."""
    return _where(ADMIN_URL)


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))


async def create_migrated_database() -> str:
    """A new database with ``supabase/migrations`` applied (as the PostgreSQL store does at
    startup, shim included): what the Supabase REST store, which cannot run DDL, needs."""
    from opencode.storage.postgres import PostgresStore

    url = await create_database()
    store = PostgresStore(url)
    await store.initialize()
    await store.close()
    return url


@contextmanager
def throwaway_database(*, migrated: bool = False) -> Iterator[str]:
    """A fresh database's URL for the block (``migrated``: with the schema), dropped after."""
    url = run_sync(create_migrated_database if migrated else create_database)
    try:
        yield url
    finally:
        drop_database_sync(url)


def create_database_sync() -> str:
    return run_sync(create_database)


def drop_database_sync(url: str) -> None:
    run_sync(lambda: drop_database(url))


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """``await make()`` on a fresh event loop in a worker thread."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"
