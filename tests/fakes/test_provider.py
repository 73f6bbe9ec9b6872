"""The fake provider's contract beyond what tests/llm exercises: plain JSON completions,
error bodies, and noticing a client that goes away."""

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

import opencode.core.env  # noqa: F401

# isort: split
import litellm

from tests.fakes.provider import NO_REPLY_MESSAGE, FakeProvider, Reply

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(fake: FakeProvider) -> None:
    fake.reset()


@pytest.mark.parametrize("dialect", list(MODELS))
async def test_non_streaming_completion(fake: FakeProvider, dialect: str) -> None:
    fake.script(Reply(text="A short title", tool_calls=[("c1", "f", {"x": 1})], output_tokens=4))

    response = await litellm.acompletion(
        model=MODELS[dialect],
        messages=[{"role": "user", "content": "hi"}],
        api_key="test-key",
        api_base=getattr(fake, f"{dialect}_base"),
        num_retries=0,
        max_retries=0,
    )

    message = response.choices[0].message
    assert message.content == "A short title"
    assert json.loads(message.tool_calls[0].function.arguments) == {"x": 1}
    assert response.usage.completion_tokens == 4
    assert fake.requests[0].dialect == dialect


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/v1/chat/completions", lambda body: body["error"]["message"]),
        ("/v1/messages", lambda body: body["error"]["message"]),
        ("/v1beta/models/m:generateContent", lambda body: body["error"]["message"]),
    ],
)
async def test_unscripted_request_is_a_500_in_the_dialect(
    fake: FakeProvider, path: str, error
) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.post(path, json={"model": "m"})

    assert response.status_code == 500
    assert error(response.json()) == NO_REPLY_MESSAGE
    assert fake.requests[0].path == path


async def test_retry_after_header_on_errors(fake: FakeProvider) -> None:
    fake.script(Reply(status=429, retry_after="3"))

    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.post("/v1/chat/completions", json={"stream": True})

    assert (response.status_code, response.headers["retry-after"]) == (429, "3")


async def test_client_disconnect_ends_a_hanging_stream(fake: FakeProvider) -> None:
    fake.script(Reply(text="one two", hang_after=1))

    async with (
        httpx.AsyncClient(base_url=fake.base_url) as client,
        client.stream("POST", "/v1/chat/completions", json={"stream": True}) as response,
    ):
        lines = response.aiter_lines()
        assert '"one "' in await anext(lines)
        assert fake.open_streams == 1

    assert await asyncio.to_thread(fake.wait_closed, 1.0)


async def test_usage_chunk_only_when_asked(fake: FakeProvider) -> None:
    fake.script(Reply(text="x"), Reply(text="x"))

    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        plain = await client.post("/v1/chat/completions", json={"stream": True})
        with_usage = await client.post(
            "/v1/chat/completions",
            json={"stream": True, "stream_options": {"include_usage": True}},
        )

    assert '"usage"' not in plain.text and plain.text.endswith("data: [DONE]\n\n")
    assert '"prompt_tokens": 10' in with_usage.text
