"""OpenAIStreamClient beyond the behaviour it shares with LiteLLMClient (test_litellm_adapter runs
those tests on both): the same StepOutput as LiteLLM for the same bytes, the request it sends,
event-stream shapes the fake provider does not produce, its idle timeout, connection reuse."""

import asyncio
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.openai_native import OpenAIStreamClient, max_tokens_field, request_body
from opencode.llm.types import (
    ChatMessage,
    ModelClient,
    ModelRequest,
    ProviderError,
    ReasoningDelta,
    StepOutput,
    StreamChunk,
    TextDelta,
    ToolSpec,
)
from tests.fakes.provider import FakeProvider, Reply
from tests.llm.test_idle_timeout import _all_closed, silent_server

MODEL = "openai/gpt-4o-mini"
USER = (ChatMessage("user", "hi"),)
IDLE = 0.3


def openai_request(api_base: str, **fields: Any) -> ModelRequest:
    return ModelRequest(
        fields.pop("model", MODEL), USER, api_key="test-key", api_base=api_base, **fields
    )


async def run(client: ModelClient, request: ModelRequest) -> list[StreamChunk]:
    return [chunk async for chunk in client.stream(request)]


async def run_native(request: ModelRequest, **options: Any) -> list[StreamChunk]:
    client = OpenAIStreamClient(**options)
    try:
        return await run(client, request)
    finally:
        await client.aclose()


# ---- the same step as LiteLLM's ----


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "openai/o3-mini", "openai/unpriced"])
async def test_both_clients_produce_the_same_step(fake_provider: FakeProvider, model: str) -> None:
    reply = Reply(
        reasoning=["Let me ", "look."],
        text=["I'll read ", "both."],
        tool_calls=[
            ("call_a", "read", {"path": "src/ü.py", "lines": [1, 2]}),
            ("call_b", "ls", "{}"),
        ],
        input_tokens=1200,
        output_tokens=300,
        reasoning_tokens=120,
    )
    fake_provider.script(reply, reply)
    tools = (
        ToolSpec("read", "Read", {"type": "object"}),
        ToolSpec("ls", "List", {"type": "object"}),
    )
    request = openai_request(fake_provider.openai_base, model=model, tools=tools)

    through_litellm = await run(LiteLLMClient(), request)
    native = await run_native(request)

    assert native == through_litellm
    out = native[-1]
    assert isinstance(out, StepOutput) and out.finish_reason == "tool_calls"
    assert (out.usage.output_tokens, out.usage.reasoning_tokens) == (300, 120)
    assert (out.cost > 0) == (model != "openai/unpriced")


async def test_cached_tokens_are_priced_as_litellm_prices_them() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "total_tokens": 1050,
        "prompt_tokens_details": {"cached_tokens": 600},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    body = sse(chunk({"content": "ok"}), chunk({}, "stop"), {**chunk(), "usage": usage}, "[DONE]")
    async with RawProvider(Answer([body]), Answer([body])) as provider:
        through_litellm = await run(LiteLLMClient(), openai_request(provider.base))
        native = await run_native(openai_request(provider.base))

    assert native == through_litellm
    out = native[-1]
    assert isinstance(out, StepOutput)
    assert (out.usage.input_tokens, out.usage.cache_read_tokens) == (1000, 600)
    assert out.cost > 0


# ---- the request ----


async def test_request_body_and_headers(fake_provider: FakeProvider) -> None:
    fake_provider.script(Reply(text="ok"))
    tools = (ToolSpec("read", "Read a file", {"type": "object", "properties": {}}),)
    extra = {"reasoning_effort": "low", "timeout": 5, "num_retries": 2, "stream": False}

    await run_native(
        openai_request(fake_provider.openai_base, tools=tools, max_tokens=64, extra=extra)
    )

    sent = fake_provider.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer test-key"
    body = sent.json
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["tools"][0]["function"]["name"] == "read"
    assert body["max_tokens"] == 64 and "max_completion_tokens" not in body
    assert body["reasoning_effort"] == "low"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert not {"timeout", "num_retries"} & body.keys()


def test_openai_itself_gets_max_completion_tokens() -> None:
    assert max_tokens_field(None) == "max_completion_tokens"
    assert max_tokens_field("https://api.openai.com/v1/") == "max_completion_tokens"
    assert max_tokens_field("http://127.0.0.1:8000/v1") == "max_tokens"
    body = request_body(ModelRequest(MODEL, USER, max_tokens=5))
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body


async def test_no_key_no_authorization_header(fake_provider: FakeProvider) -> None:
    fake_provider.script(Reply(text="ok"))

    await run_native(ModelRequest(MODEL, USER, api_base=fake_provider.openai_base))

    assert "authorization" not in fake_provider.requests[0].headers


# ---- event-stream shapes ----


async def test_reasoning_field_comments_crlf_split_reads_and_no_done() -> None:
    body = sse(chunk({"reasoning": "hmm"}), chunk({"content": "Hel"})).replace(b"\n", b"\r\n")
    tail = b": keep-alive\n\nevent: message\n" + sse(chunk({"content": "lo"}), chunk({}, "stop"))
    async with RawProvider(Answer([body[:-20], body[-20:], tail])) as provider:
        chunks = await run_native(openai_request(provider.base))

    assert chunks[:-1] == [ReasoningDelta("hmm"), TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(chunks[-1], StepOutput) and chunks[-1].text == "Hello"


@pytest.mark.parametrize(
    ("code", "status", "retryable", "message"),
    [
        (503, 503, True, "openai error 503: overloaded"),
        (None, None, True, "openai error: overloaded"),
        ("400", 400, False, "openai error 400: overloaded"),
    ],
)
async def test_an_error_event_mid_stream_fails_the_step(
    code: Any, status: int | None, retryable: bool, message: str
) -> None:
    error = {"error": {"message": "overloaded", "code": code}}
    async with RawProvider(Answer([sse(chunk({"content": "Hi"}), error)])) as provider:
        seen: list[StreamChunk] = []
        with pytest.raises(ProviderError) as caught:
            async for item in OpenAIStreamClient().stream(openai_request(provider.base)):
                seen.append(item)

    assert seen == [TextDelta("Hi")]
    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert caught.value.message == message


async def test_a_non_json_error_body_is_quoted() -> None:
    async with RawProvider(Answer([b"Bad gateway"], status=502, content_type="text/html")) as p:
        with pytest.raises(ProviderError) as caught:
            await run_native(openai_request(p.base))

    assert caught.value.message == "openai error 502: Bad gateway"
    assert caught.value.retryable and caught.value.status_code == 502


async def test_a_chunk_that_is_not_json_fails_the_step() -> None:
    async with RawProvider(Answer([b"data: {not json\n\n"])) as provider:
        with pytest.raises(ProviderError) as caught:
            await run_native(openai_request(provider.base))

    assert caught.value.message == "openai: the stream sent a line that is not JSON: {not json"
    assert caught.value.retryable


async def test_the_connection_is_reused() -> None:
    body = sse(chunk({"content": "ok"}), chunk({}, "stop"), "[DONE]")
    async with RawProvider(Answer([body]), Answer([body]), Answer([body])) as provider:
        client = OpenAIStreamClient()
        for _ in range(3):
            assert (await run(client, openai_request(provider.base)))[-1].text == "ok"
        await client.aclose()

    assert provider.connections == 1


async def test_concurrent_first_streams_share_one_client_made_off_the_loop() -> None:
    """The HTTP client (a TLS context with the CA bundle: tens of ms of CPU) is made once, in a
    thread: by ``warm()`` at start-up, or by the first streams, which all wait for that one."""
    body = sse(chunk({"content": "ok"}), chunk({}, "stop"), "[DONE]")
    async with RawProvider(*(Answer([body]) for _ in range(4))) as provider:
        client = OpenAIStreamClient()
        client.warm()
        assert client._http is None  # still being made, in the thread
        runs = [run(client, openai_request(provider.base)) for _ in range(4)]
        outputs = await asyncio.gather(*runs)
        assert [output[-1].text for output in outputs] == ["ok"] * 4
        http = client._http
        assert http is not None and await client._opened() is http
        await client.aclose()
        assert http.is_closed


async def test_aclose_while_the_client_is_being_made_closes_it() -> None:
    client = OpenAIStreamClient()
    client.warm()
    opening = client._opening
    await client.aclose()
    assert opening is not None and opening.result().is_closed


async def test_aclose_closes_only_a_client_it_created() -> None:
    async with httpx.AsyncClient() as shared:
        await OpenAIStreamClient(shared).aclose()
        assert not shared.is_closed


# ---- idle timeout ----


@pytest.mark.parametrize("hang_after", [0, 1])
async def test_a_stalled_stream_fails_and_is_closed(
    fake_provider: FakeProvider, hang_after: int
) -> None:
    fake_provider.script(Reply(text=["first ", "never"], hang_after=hang_after))
    seen: list[StreamChunk] = []
    started = time.monotonic()

    with pytest.raises(ProviderError) as caught:
        client = OpenAIStreamClient(idle_timeout=IDLE)
        async for item in client.stream(openai_request(fake_provider.openai_base)):
            seen.append(item)

    assert seen == [TextDelta("first ")][:hang_after]
    assert caught.value.message == "openai: no data for 0.3 s; the stream stalled"
    assert caught.value.retryable and IDLE <= time.monotonic() - started < IDLE + 2
    assert await asyncio.to_thread(fake_provider.wait_closed, 1.0)


async def test_slow_provider_and_slow_consumer_are_not_stalls(fake_provider: FakeProvider) -> None:
    fake_provider.script(Reply(text=["a ", "b ", "c ", "d"], chunk_delay=IDLE / 3))
    chunks = []

    async for item in OpenAIStreamClient(idle_timeout=IDLE).stream(
        openai_request(fake_provider.openai_base)
    ):
        if not chunks:
            await asyncio.sleep(IDLE + 0.1)  # only the consumer is slow here
        chunks.append(item)

    assert isinstance(chunks[-1], StepOutput) and chunks[-1].text == "a b c d"


async def test_a_provider_that_never_answers_fails_and_is_closed() -> None:
    async with silent_server() as (base_url, connections):
        with pytest.raises(ProviderError, match="stream stalled"):
            await run_native(openai_request(base_url + "/v1"), idle_timeout=IDLE)

        await asyncio.wait_for(_all_closed(connections), 1.0)


# ---- a scripted raw provider ----


def chunk(delta: dict | None = None, finish: str | None = None) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": choices}


def sse(*events: dict | str) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


@dataclass
class Answer:
    pieces: list[bytes]  # the body, written in these pieces with a pause between them
    status: int = 200
    content_type: str = "text/event-stream"


class RawProvider:
    """A loopback HTTP/1.1 server for bytes the fake provider does not send: each request gets
    the next scripted Answer (Content-Length framed, keep-alive); connections are counted."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = deque(answers)
        self.connections = 0
        self.base = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "RawProvider":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                await self._answer(writer, self.answers.popleft())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, answer: Answer) -> None:
        size = sum(map(len, answer.pieces))
        writer.write(
            f"HTTP/1.1 {answer.status} Scripted\r\ncontent-type: {answer.content_type}\r\n"
            f"content-length: {size}\r\n\r\n".encode()
        )
        for piece in answer.pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
