"""Shared fixtures: the fake LLM provider on loopback and the real server in a subprocess.

The real server stores in SQLite. A test module that sets ``E2E_STORES = ("sqlite",
"postgres", "supabase")`` runs every test against each store: on PostgreSQL the server gets
a fresh database (``tests/pg.py``), dropped after; on Supabase, that database behind the
PostgREST emulator (``tests/fakes/postgrest.py``).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import opencode.core.env  # noqa: F401  (before anything imports LiteLLM)
from tests.e2e.server import ServerProcess
from tests.fakes.postgrest import PostgrestServer, signed_token
from tests.fakes.provider import FakeProvider
from tests.fakes.website import FakeWebsite
from tests.pg import throwaway_database


@pytest.fixture(scope="session")
def provider_server() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(provider_server: FakeProvider) -> Iterator[FakeProvider]:
    provider_server.reset()
    yield provider_server
    provider_server.reset()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames:
        stores = getattr(metafunc.module, "E2E_STORES", ("sqlite",))
        metafunc.parametrize("store_backend", stores, indirect=True, scope="session")


@pytest.fixture(scope="session")
def store_backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@contextmanager
def database(store_backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings of a fresh, empty store of that kind: ``DATABASE_URL`` for SQLite and
    PostgreSQL; for Supabase, ``SUPABASE_URL`` + ``SUPABASE_KEY`` of the PostgREST emulator
    serving a migrated database (the REST store cannot create its tables)."""
    if store_backend == "sqlite":
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'opencode.db'}"}
        return
    supabase = store_backend == "supabase"
    with throwaway_database(migrated=supabase) as url:
        if not supabase:
            yield {"DATABASE_URL": url}
            return
        with PostgrestServer(url) as rest:
            yield {"SUPABASE_URL": rest.url, "SUPABASE_KEY": signed_token("service_role")}


def server_env(
    fake: FakeProvider, tmp_path: Path, store: dict[str, str] | None = None, **overrides: str
) -> dict[str, str]:
    env = {
        **(store or {"DATABASE_URL": f"sqlite:///{tmp_path / 'opencode.db'}"}),
        "OPENAI_API_KEY": "test-key",
        "OPENAI_API_BASE": fake.openai_base,
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_API_BASE": fake.anthropic_base,
        "GEMINI_API_KEY": "test-key",
        "GEMINI_API_BASE": fake.gemini_base,
        "OPENCODE_MODEL": "openai/gpt-4o-mini",
        "OPENCODE_RETRY_BASE_DELAY": "0.01",
        "OPENCODE_LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    if (
        "SUPABASE_URL" in env
        and "OPENCODE_AUTH" not in env
        and "OPENCODE_SERVER_PASSWORD" not in env
    ):
        env["OPENCODE_AUTH"] = "none"  # the Supabase store alone; auth tests ask for supabase
    return env


@pytest.fixture(scope="session")
def shared_server(
    provider_server: FakeProvider, tmp_path_factory, store_backend: str
) -> Iterator[ServerProcess]:
    """One real server per store for the tests that need no special settings (each uses new
    sessions)."""
    workdir = tmp_path_factory.mktemp(f"shared-server-{store_backend}")
    with database(store_backend, workdir) as store:
        server = ServerProcess(workdir, server_env(provider_server, workdir, store)).start()
        yield server
        server.stop()


@pytest.fixture
def server(fake: FakeProvider, shared_server: ServerProcess) -> ServerProcess:
    return shared_server


@pytest.fixture
def start_server(fake: FakeProvider, tmp_path: Path, store_backend: str) -> Iterator:
    """``start_server(**env)`` runs the real server against the fake provider; all are
    stopped after the test. The servers of one test share one store (a restart finds what
    the server before it stored)."""
    servers: list[ServerProcess] = []

    with database(store_backend, tmp_path) as store:

        def start(**overrides: str) -> ServerProcess:
            env = server_env(fake, tmp_path, store, **overrides)
            server = ServerProcess(tmp_path, env).start()
            servers.append(server)
            return server

        yield start
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def website() -> Iterator[FakeWebsite]:
    """The loopback web site that webfetch tests fetch from."""
    with FakeWebsite() as site:
        yield site


@pytest.fixture
def site(website: FakeWebsite) -> FakeWebsite:
    website.reset()
    return website
