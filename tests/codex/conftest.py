import pytest

from tests.codex.upstream import Schema, Upstream, generate, load_seed


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Upstream:
    return generate(tmp_path_factory.mktemp("codex"))


@pytest.fixture(scope="session")
def seed() -> Schema:
    return load_seed()
