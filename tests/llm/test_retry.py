"""RetryingClient over the real LiteLLM path; sleeping is recorded, not done."""

import pytest

from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.retry import RetryingClient
from opencode.llm.types import (
    ChatMessage,
    ModelClient,
    ModelRequest,
    ProviderError,
    StepOutput,
    TextDelta,
)
from tests.fakes.provider import FakeProvider, Reply
from tests.llm.test_litellm_adapter import model_request


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def openai_request(fake: FakeProvider) -> ModelRequest:
    messages = (ChatMessage(role="user", text="hi"),)
    return ModelRequest(
        "openai/gpt-4o-mini", messages, api_key="test-key", api_base=fake.openai_base
    )


def retrying(sleeps: Sleeps, **options) -> RetryingClient:
    return RetryingClient(LiteLLMClient(), sleep=sleeps, **options)


async def run(client: RetryingClient, request: ModelRequest) -> list:
    return [chunk async for chunk in client.stream(request)]


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
async def test_rate_limit_waits_retry_after_then_succeeds(
    fake_provider: FakeProvider, sleeps: Sleeps, dialect: str
) -> None:
    fake_provider.script(Reply(status=429, retry_after="2"), Reply(text="ok"))
    model = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5"}
    request = ModelRequest(
        model.get(dialect, "gemini/gemini-2.5-flash"),
        (ChatMessage(role="user", text="hi"),),
        api_key="test-key",
        api_base=getattr(fake_provider, f"{dialect}_base"),
    )
    heard: list[tuple[int, int | None, float]] = []

    def on_retry(retry: int, error: ProviderError, delay: float) -> None:
        heard.append((retry, error.status_code, delay))

    chunks = await run(retrying(sleeps, on_retry=on_retry), request)

    assert chunks[0] == TextDelta("ok") and isinstance(chunks[-1], StepOutput)
    assert sleeps.delays == [2.0]
    assert heard == [(1, 429, 2.0)]
    assert len(fake_provider.requests) == 2


async def test_server_errors_back_off_exponentially(
    fake_provider: FakeProvider, sleeps: Sleeps
) -> None:
    fake_provider.script(Reply(status=503), Reply(status=503), Reply(text="ok"))
    heard: list[int] = []

    chunks = await run(
        retrying(sleeps, base_delay=1.0, on_retry=lambda n, e, d: heard.append(n)),
        openai_request(fake_provider),
    )

    assert chunks[-1].text == "ok"
    assert len(sleeps.delays) == 2 and heard == [1, 2]
    assert 0.5 <= sleeps.delays[0] <= 1.0 and 1.0 <= sleeps.delays[1] <= 2.0


async def test_delays_are_capped(fake_provider: FakeProvider, sleeps: Sleeps) -> None:
    fake_provider.script(Reply(status=429, retry_after="120"), Reply(status=500), Reply("ok"))

    await run(retrying(sleeps, base_delay=50.0, max_delay=7.0), openai_request(fake_provider))

    assert sleeps.delays[0] == 7.0 and 3.5 <= sleeps.delays[1] <= 7.0


async def test_client_errors_are_not_retried(fake_provider: FakeProvider, sleeps: Sleeps) -> None:
    fake_provider.script(Reply(status=400, error_message="bad request"), Reply(text="unused"))

    with pytest.raises(ProviderError) as caught:
        await run(retrying(sleeps), openai_request(fake_provider))

    assert caught.value.status_code == 400
    assert sleeps.delays == [] and len(fake_provider.requests) == 1


async def test_failure_after_first_chunk_is_not_retried(
    fake_provider: FakeProvider, sleeps: Sleeps
) -> None:
    fake_provider.script(Reply(text=["partial ", "rest"], fail_after=1), Reply(text="unused"))
    seen: list = []

    with pytest.raises(ProviderError) as caught:
        async for chunk in retrying(sleeps).stream(openai_request(fake_provider)):
            seen.append(chunk)

    assert caught.value.retryable
    assert seen == [TextDelta("partial ")]
    assert sleeps.delays == [] and len(fake_provider.requests) == 1


async def test_gives_up_after_max_retries(fake_provider: FakeProvider, sleeps: Sleeps) -> None:
    fake_provider.script(*[Reply(status=502, error_message="bad gateway")] * 3)

    with pytest.raises(ProviderError, match="bad gateway") as caught:
        await run(retrying(sleeps, max_retries=2), openai_request(fake_provider))

    assert caught.value.status_code == 502
    assert len(sleeps.delays) == 2 and len(fake_provider.requests) == 3


# ---- on every path, the faults that fail a stream before its first chunk ----

FAULTS_BEFORE_THE_FIRST_CHUNK = {
    "cut": Reply(text="lost", cut_after=0),
    "empty": Reply(body=b"", content_type="text/event-stream"),
    "html": Reply(body=b"<html><body>Bad gateway</body></html>", content_type="text/html"),
    "invalid-json": Reply(text="lost", invalid_json_after=0),
}


@pytest.mark.parametrize("fault", list(FAULTS_BEFORE_THE_FIRST_CHUNK))
async def test_a_stream_fault_before_the_first_chunk_is_retried(
    fake_provider: FakeProvider, sleeps: Sleeps, dialect: str, client: ModelClient, fault: str
) -> None:
    fake_provider.script(FAULTS_BEFORE_THE_FIRST_CHUNK[fault], Reply(text="ok"))
    heard: list[str] = []
    retrying_client = RetryingClient(
        client, sleep=sleeps, on_retry=lambda n, error, d: heard.append(error.message)
    )

    chunks = await run(retrying_client, model_request(fake_provider, dialect))

    assert chunks[0] == TextDelta("ok") and isinstance(chunks[-1], StepOutput)
    assert len(sleeps.delays) == 1 and len(fake_provider.requests) == 2
    assert heard[0].startswith(f"{dialect}: ")


async def test_a_stream_cut_after_its_first_chunk_is_not_retried(
    fake_provider: FakeProvider, sleeps: Sleeps, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["partial ", "rest"], cut_after=1), Reply(text="unused"))
    seen: list = []

    with pytest.raises(ProviderError, match="the stream ended before the model finished"):
        async for chunk in RetryingClient(client, sleep=sleeps).stream(
            model_request(fake_provider, dialect)
        ):
            seen.append(chunk)

    assert seen == [TextDelta("partial ")]
    assert sleeps.delays == [] and len(fake_provider.requests) == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured_on_every_path(
    fake_provider: FakeProvider, sleeps: Sleeps, dialect: str, client: ModelClient, status: int
) -> None:
    fake_provider.script(Reply(status=status, retry_after="3"), Reply(text="ok"))

    chunks = await run(RetryingClient(client, sleep=sleeps), model_request(fake_provider, dialect))

    assert chunks[-1].text == "ok"
    assert sleeps.delays == [3.0] and len(fake_provider.requests) == 2
