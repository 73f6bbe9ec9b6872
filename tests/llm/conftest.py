from collections.abc import Iterator

import pytest

from tests.fakes.provider import FakeProvider


@pytest.fixture(scope="session")
def _fake_provider_server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake_provider(_fake_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    """One loopback provider for the whole run; queue and recorded requests cleared per test."""
    _fake_provider_server.reset()
    yield _fake_provider_server
    _fake_provider_server.reset()
