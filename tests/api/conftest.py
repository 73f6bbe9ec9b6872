"""The real app in-process (lifespan included) over ``httpx.ASGITransport``."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from opencode.api.app import create_app
from opencode.core.settings import Settings


@pytest.fixture
def make_client(tmp_path: Path) -> Callable:
    @asynccontextmanager
    async def make(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
        values = {"DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}", **settings}
        app = create_app(Settings(_env_file=None, **values))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost"
            ) as client:
                client.app = app  # type: ignore[attr-defined]
                yield client

    return make


@pytest.fixture
async def client(make_client, monkeypatch) -> AsyncIterator[httpx.AsyncClient]:
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "OPENCODE_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    async with make_client(OPENAI_API_KEY="test-key") as client:
        yield client
