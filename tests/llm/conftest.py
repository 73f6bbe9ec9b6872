import asyncio
from collections.abc import AsyncIterator

import pytest

from opencode.llm.anthropic_native import AnthropicStreamClient
from opencode.llm.gemini_native import GeminiStreamClient
from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.openai_native import OpenAIStreamClient
from opencode.llm.types import ChatMessage, ModelClient, ModelRequest
from tests.fakes.provider import FakeProvider, Reply

# "<client>-<dialect>": LiteLLM speaks every dialect, each native client its own provider's.
NATIVE = {
    "openai": OpenAIStreamClient,
    "anthropic": AnthropicStreamClient,
    "gemini": GeminiStreamClient,
}
PAIRS = [
    *(f"litellm-{dialect}" for dialect in NATIVE),
    *(f"native-{dialect}" for dialect in NATIVE),
]
OPENAI_PAIRS = ["litellm-openai", "native-openai"]
ANTHROPIC_PAIRS = ["litellm-anthropic", "native-anthropic"]
GEMINI_PAIRS = ["litellm-gemini", "native-gemini"]


def client_class(pair: str) -> type:
    kind, dialect = pair.split("-", 1)
    return LiteLLMClient if kind == "litellm" else NATIVE[dialect]


@pytest.fixture(scope="session")
def _warm_provider(provider_server: FakeProvider) -> FakeProvider:
    asyncio.run(_warm_up_litellm(provider_server))
    return provider_server


async def _warm_up_litellm(fake: FakeProvider) -> None:
    """LiteLLM imports a provider's modules during its first call (~1 s), which would count
    against the sub-second idle timeouts of the first tests to call that provider."""
    models = {
        "openai": "gpt-4o-mini",
        "anthropic": "claude-sonnet-4-5",
        "gemini": "gemini-2.5-flash",
    }
    for dialect, model in models.items():
        fake.script(Reply(text="warm"))
        base = getattr(fake, f"{dialect}_base")
        user = (ChatMessage("user", "hi"),)
        request = ModelRequest(f"{dialect}/{model}", user, api_key="test-key", api_base=base)
        async for _ in LiteLLMClient().stream(request):
            pass
    fake.reset()


@pytest.fixture
def fake_provider(_warm_provider: FakeProvider, fake: FakeProvider) -> FakeProvider:
    """The run's loopback provider (tests/conftest.py), LiteLLM warmed up, reset per test."""
    return fake


@pytest.fixture(params=PAIRS)
def pair(request: pytest.FixtureRequest) -> str:
    """Which client against which wire dialect; a test narrows it with
    ``@pytest.mark.parametrize("pair", [...])``."""
    return request.param


@pytest.fixture
def dialect(pair: str) -> str:
    return pair.split("-", 1)[1]


@pytest.fixture
async def client(pair: str) -> AsyncIterator[ModelClient]:
    model_client = client_class(pair)()
    yield model_client
    if (aclose := getattr(model_client, "aclose", None)) is not None:
        await aclose()
