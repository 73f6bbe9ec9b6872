"""LiteLLMClient's idle timeout: a provider that goes quiet fails the step instead of hanging
it; a slow provider, or a slow consumer, does not."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.types import ChatMessage, ModelRequest, ProviderError, StepOutput, TextDelta
from tests.fakes.provider import FakeProvider, Reply

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
IDLE = 0.3


@pytest.fixture(params=list(MODELS))
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


def model_request(dialect: str, api_base: str) -> ModelRequest:
    user = (ChatMessage(role="user", text="hi"),)
    return ModelRequest(MODELS[dialect], user, api_key="test-key", api_base=api_base)


def fake_request(fake: FakeProvider, dialect: str) -> ModelRequest:
    return model_request(dialect, getattr(fake, f"{dialect}_base"))


def idle_client() -> LiteLLMClient:
    return LiteLLMClient(idle_timeout=IDLE)


def stalled(dialect: str) -> str:
    return f"{dialect}: no data for 0.3 s; the stream stalled"


@pytest.mark.parametrize("hang_after", [0, 1])
async def test_a_stalled_stream_fails_and_is_closed(
    fake_provider: FakeProvider, dialect: str, hang_after: int
) -> None:
    fake_provider.script(Reply(text=["first ", "never"], hang_after=hang_after))
    seen = []
    started = time.monotonic()

    with pytest.raises(ProviderError) as caught:
        async for chunk in idle_client().stream(fake_request(fake_provider, dialect)):
            seen.append(chunk)

    assert seen == [TextDelta("first ")][:hang_after]
    assert caught.value.message == stalled(dialect)
    assert caught.value.retryable and caught.value.status_code is None
    assert IDLE <= time.monotonic() - started < IDLE + 2
    assert await asyncio.to_thread(fake_provider.wait_closed, 1.0)


async def test_a_slow_but_steady_stream_is_not_interrupted(
    fake_provider: FakeProvider, dialect: str
) -> None:
    pieces = ["a ", "b ", "c ", "d ", "e"]
    fake_provider.script(Reply(text=pieces, chunk_delay=IDLE / 3))
    started = time.monotonic()

    chunks = [c async for c in idle_client().stream(fake_request(fake_provider, dialect))]

    assert time.monotonic() - started > IDLE  # longer in total than one idle period
    assert chunks[:-1] == [TextDelta(piece) for piece in pieces]
    assert isinstance(chunks[-1], StepOutput) and chunks[-1].text == "a b c d e"


async def test_time_the_consumer_spends_between_chunks_does_not_count(
    fake_provider: FakeProvider, dialect: str
) -> None:
    fake_provider.script(Reply(text=["a ", "b ", "c"]))
    chunks = []

    async for chunk in idle_client().stream(fake_request(fake_provider, dialect)):
        if not chunks:
            await asyncio.sleep(IDLE + 0.1)  # the provider is done; only the consumer is slow
        chunks.append(chunk)

    assert isinstance(chunks[-1], StepOutput) and chunks[-1].text == "a b c"


async def test_a_provider_that_never_answers_fails_and_is_closed(dialect: str) -> None:
    async with silent_server() as (base_url, connections):
        request = model_request(dialect, _silent_base(base_url, dialect))

        with pytest.raises(ProviderError) as caught:
            async for _ in idle_client().stream(request):
                pass

        assert caught.value.message == stalled(dialect) and caught.value.retryable
        await asyncio.wait_for(_all_closed(connections), 1.0)


def _silent_base(base_url: str, dialect: str) -> str:
    paths = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}
    return base_url + paths[dialect]


async def _all_closed(connections: list[asyncio.Event]) -> None:
    assert connections, "the client never connected"
    await asyncio.gather(*(closed.wait() for closed in connections))


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, list[asyncio.Event]]]:
    """A loopback server that accepts connections, reads the request and never answers.
    Yields its base URL and one Event per connection, set when the client hangs up."""
    connections: list[asyncio.Event] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        closed = asyncio.Event()
        connections.append(closed)
        try:
            while await reader.read(65536):
                pass
        finally:
            closed.set()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections
    finally:
        server.close()
        await server.wait_closed()
