"""ProviderRouter: each request to its provider's client, the rest to the default."""

from collections.abc import AsyncIterator

from opencode.llm.router import ProviderRouter
from opencode.llm.types import ChatMessage, ModelRequest, StepOutput, StreamChunk, TextDelta, Usage


class Recorder:
    """A ModelClient that answers with its own name and counts ``aclose`` calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.models: list[str] = []
        self.closed = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        self.models.append(request.model)
        yield TextDelta(self.name)
        yield StepOutput(self.name, (), (), "stop", Usage(), 0.0)

    async def aclose(self) -> None:
        self.closed += 1


class Stateless:
    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        yield StepOutput("", (), (), "stop", Usage(), 0.0)


def request_for(model: str) -> ModelRequest:
    return ModelRequest(model, (ChatMessage("user", "hi"),))


async def first_text(router: ProviderRouter, model: str) -> str:
    chunks = [chunk async for chunk in router.stream(request_for(model))]
    assert isinstance(chunks[0], TextDelta)
    return chunks[0].text


async def test_requests_go_to_their_providers_client() -> None:
    litellm, native = Recorder("litellm"), Recorder("native")
    router = ProviderRouter(litellm, {"openai": native})

    assert await first_text(router, "openai/gpt-4o-mini") == "native"
    assert await first_text(router, "anthropic/claude-sonnet-4-5") == "litellm"
    assert await first_text(router, "gemini/gemini-2.5-flash") == "litellm"
    assert await first_text(router, "openai-compatible/x") == "litellm"  # the prefix, not a prefix
    assert native.models == ["openai/gpt-4o-mini"]


async def test_the_stream_is_the_clients_own() -> None:
    """Closing what the router returns closes the provider stream: there is no layer between."""
    native = Recorder("native")
    stream = ProviderRouter(Recorder("litellm"), {"openai": native}).stream(request_for("openai/m"))

    assert stream.ag_code is Recorder.stream.__code__  # type: ignore[attr-defined]
    await stream.aclose()


async def test_aclose_closes_each_client_once() -> None:
    shared, other = Recorder("shared"), Recorder("other")
    router = ProviderRouter(shared, {"openai": shared, "x": other, "y": Stateless()})

    await router.aclose()

    assert (shared.closed, other.closed) == (1, 1)
