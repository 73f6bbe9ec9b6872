"""Shared fixtures: the fake LLM provider on loopback and the real server in a subprocess."""

from collections.abc import Iterator
from pathlib import Path

import pytest

import opencode.core.env  # noqa: F401  (before anything imports LiteLLM)
from tests.e2e.server import ServerProcess
from tests.fakes.provider import FakeProvider
from tests.fakes.website import FakeWebsite


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


def server_env(fake: FakeProvider, tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'opencode.db'}",
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
    return env


@pytest.fixture(scope="session")
def shared_server(provider_server: FakeProvider, tmp_path_factory) -> Iterator[ServerProcess]:
    """One real server for the tests that need no special settings (each uses new sessions)."""
    workdir = tmp_path_factory.mktemp("shared-server")
    server = ServerProcess(workdir, server_env(provider_server, workdir)).start()
    yield server
    server.stop()


@pytest.fixture
def server(fake: FakeProvider, shared_server: ServerProcess) -> ServerProcess:
    return shared_server


@pytest.fixture
def start_server(fake: FakeProvider, tmp_path: Path) -> Iterator:
    """``start_server(**env)`` runs the real server against the fake provider; all are
    stopped after the test."""
    servers: list[ServerProcess] = []

    def start(**overrides: str) -> ServerProcess:
        server = ServerProcess(tmp_path, server_env(fake, tmp_path, **overrides)).start()
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
