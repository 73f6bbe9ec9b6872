"""Both ModelClients through their real HTTP paths, against the loopback fake provider: LiteLLMClient
in every dialect, OpenAIStreamClient in OpenAI's (the ``pair`` fixture, in conftest)."""

import asyncio
import json
import time
from contextlib import aclosing
from email.utils import formatdate

import litellm
import pytest

from opencode.llm.accumulate import to_usage
from opencode.llm.errors import parse_retry_after
from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.types import (
    ChatMessage,
    ModelClient,
    ModelRequest,
    ProviderError,
    Reasoning,
    ReasoningDelta,
    StepOutput,
    StreamChunk,
    TextDelta,
    ToolSpec,
)
from tests.fakes.provider import NO_REPLY_MESSAGE, FakeProvider, Reply
from tests.llm.conftest import OPENAI_PAIRS

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
USER = (ChatMessage(role="user", text="hi"),)


def model_request(fake: FakeProvider, dialect: str, **fields) -> ModelRequest:
    fields.setdefault("messages", USER)
    base = getattr(fake, f"{dialect}_base")
    model = fields.pop("model", MODELS[dialect])
    return ModelRequest(model=model, api_key="test-key", api_base=base, **fields)


async def collect(
    client: ModelClient, request: ModelRequest
) -> tuple[list[StreamChunk], StepOutput]:
    chunks = [chunk async for chunk in client.stream(request)]
    assert isinstance(chunks[-1], StepOutput)
    assert not any(isinstance(chunk, StepOutput) for chunk in chunks[:-1])
    return chunks[:-1], chunks[-1]


def map_price(model: str, key: str) -> float:
    entry = litellm.model_cost.get(model) or litellm.model_cost[model.split("/", 1)[1]]
    return entry[key]


async def test_text_streams_in_order(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["Hel", "lo, ", "wor", "ld!"]))

    deltas, out = await collect(client, model_request(fake_provider, dialect, system="Be brief."))

    assert deltas == [TextDelta("Hel"), TextDelta("lo, "), TextDelta("wor"), TextDelta("ld!")]
    assert out.text == "Hello, world!"
    assert out.finish_reason == "stop"
    assert out.tool_calls == () and out.reasoning == ()
    assert fake_provider.requests[0].dialect == dialect


async def test_usage_and_cost_come_from_the_offline_map(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text="ok", input_tokens=1200, output_tokens=300))

    _, out = await collect(client, model_request(fake_provider, dialect))

    model = MODELS[dialect]
    assert (out.usage.input_tokens, out.usage.output_tokens) == (1200, 300)
    expected = 1200 * map_price(model, "input_cost_per_token") + 300 * map_price(
        model, "output_cost_per_token"
    )
    assert out.cost == pytest.approx(expected, rel=1e-9)
    assert out.cost > 0


@pytest.mark.parametrize("pair", [*OPENAI_PAIRS, "litellm-gemini"])
async def test_reasoning_tokens_are_reported(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text="ok", reasoning="hmm", output_tokens=50, reasoning_tokens=20))

    _, out = await collect(client, model_request(fake_provider, dialect))

    assert (out.usage.output_tokens, out.usage.reasoning_tokens) == (50, 20)


@pytest.mark.parametrize("pair", OPENAI_PAIRS)
async def test_unknown_model_costs_nothing(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    fake_provider.script(Reply(text="ok"))

    _, out = await collect(
        client, model_request(fake_provider, "openai", model="openai/no-such-model")
    )

    assert out.cost == 0.0 and out.usage.input_tokens == 10


def test_usage_maps_cache_fields() -> None:
    usage = litellm.Usage(
        prompt_tokens=100,
        completion_tokens=20,
        prompt_tokens_details={"cached_tokens": 60},
        completion_tokens_details={"reasoning_tokens": 7},
        cache_creation_input_tokens=30,
    )

    mapped = to_usage(usage)

    assert (mapped.input_tokens, mapped.output_tokens, mapped.reasoning_tokens) == (100, 20, 7)
    assert (mapped.cache_read_tokens, mapped.cache_write_tokens) == (60, 30)


async def test_tool_calls_are_reassembled(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    first = {"path": "src/main.py", "lines": [1, 2, 3], "note": 'ünïcode "quoted"'}
    fake_provider.script(
        Reply(text="Let me look.", tool_calls=[("call_a", "read", first), ("call_b", "ls", "{}")])
    )
    tools = (
        ToolSpec("read", "Read a file", {"type": "object", "properties": {"path": {}}}),
        ToolSpec("ls", "List files", {"type": "object", "properties": {}}),
    )

    _, out = await collect(client, model_request(fake_provider, dialect, tools=tools))

    assert [(call.id, call.name) for call in out.tool_calls] == [
        ("call_a", "read"),
        ("call_b", "ls"),
    ]
    assert json.loads(out.tool_calls[0].arguments) == first
    assert json.loads(out.tool_calls[1].arguments) == {}
    assert out.finish_reason == "tool_calls"
    assert out.text == "Let me look."
    assert _tool_names(fake_provider.requests[0].json, dialect) == ["read", "ls"]


def _tool_names(body: dict, dialect: str) -> list[str]:
    if dialect == "openai":
        return [tool["function"]["name"] for tool in body["tools"]]
    if dialect == "anthropic":
        return [tool["name"] for tool in body["tools"]]
    return [decl["name"] for tool in body["tools"] for decl in tool["function_declarations"]]


async def test_no_tools_key_without_tools(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text="ok"))

    await collect(client, model_request(fake_provider, dialect))

    assert "tools" not in fake_provider.requests[0].json


async def test_reasoning_streams_as_reasoning_deltas(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(reasoning=["Let me ", "think."], text="Answer."))

    deltas, out = await collect(client, model_request(fake_provider, dialect))

    assert deltas == [ReasoningDelta("Let me "), ReasoningDelta("think."), TextDelta("Answer.")]
    signature = "sig-fake" if dialect == "anthropic" else None
    assert out.reasoning == (Reasoning("Let me think.", signature),)
    assert out.text == "Answer."


@pytest.mark.parametrize(
    ("pair", "wire_reason"),
    [
        ("litellm-openai", "length"),
        ("native-openai", "length"),
        ("litellm-anthropic", "max_tokens"),
        ("litellm-gemini", "MAX_TOKENS"),
    ],
)
async def test_length_finish_is_normalised(
    fake_provider: FakeProvider, dialect: str, client: ModelClient, wire_reason: str
) -> None:
    fake_provider.script(Reply(text="cut", finish_reason=wire_reason))

    _, out = await collect(client, model_request(fake_provider, dialect, max_tokens=3))

    assert out.finish_reason == "length"


# ---- replaying history ----


def _history(out: StepOutput, *, is_error: bool = False) -> tuple[ChatMessage, ...]:
    call = out.tool_calls[0]
    return (
        *USER,
        ChatMessage("assistant", out.text, out.reasoning, out.tool_calls),
        ChatMessage("tool", "no such file", tool_call_id=call.id, is_error=is_error),
    )


async def test_anthropic_thinking_is_replayed_with_signature(fake_provider: FakeProvider) -> None:
    fake_provider.script(
        Reply(
            reasoning="Need the file.",
            redacted_thinking="opaque==",
            tool_calls=[("t1", "read", {})],
        ),
        Reply(text="Done."),
    )
    _, out = await collect(LiteLLMClient(), model_request(fake_provider, "anthropic"))
    assert out.reasoning == (
        Reasoning("", redacted="opaque=="),
        Reasoning("Need the file.", "sig-fake"),
    )

    replay = _history(out, is_error=True)
    await collect(LiteLLMClient(), model_request(fake_provider, "anthropic", messages=replay))

    assistant, tool_turn = fake_provider.requests[1].json["messages"][1:3]
    assert assistant["content"][:2] == [
        {"type": "redacted_thinking", "data": "opaque=="},
        {"type": "thinking", "thinking": "Need the file.", "signature": "sig-fake"},
    ]
    assert assistant["content"][2]["type"] == "tool_use"
    assert tool_turn["content"][0]["tool_use_id"] == "t1"
    assert "Error: no such file" in json.dumps(tool_turn["content"][0]["content"])


@pytest.mark.parametrize("pair", OPENAI_PAIRS)
async def test_openai_replay_drops_reasoning(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    fake_provider.script(Reply(reasoning="hmm", tool_calls=[("c1", "read", {"p": 1})]), Reply("ok"))
    _, out = await collect(client, model_request(fake_provider, "openai", system="sys"))

    await collect(
        client, model_request(fake_provider, "openai", system="sys", messages=_history(out))
    )

    messages = fake_provider.requests[1].json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[0]["content"] == "sys"
    assistant = messages[2]
    assert assistant["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "read", "arguments": '{"p": 1}'}}
    ]
    assert not {"reasoning_content", "thinking_blocks"} & assistant.keys()
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "no such file"}


async def test_gemini_thought_signature_round_trips_in_the_call_id(
    fake_provider: FakeProvider,
) -> None:
    fake_provider.script(Reply(reasoning="hmm", tool_calls=[("g1", "read", {"p": 1})]), Reply("ok"))
    _, out = await collect(LiteLLMClient(), model_request(fake_provider, "gemini"))
    assert out.tool_calls[0].id.startswith("g1")

    await collect(LiteLLMClient(), model_request(fake_provider, "gemini", messages=_history(out)))

    model_turn = fake_provider.requests[1].json["contents"][1]  # LiteLLM writes snake_case
    assert model_turn["parts"][-1]["thoughtSignature"] == "sig-fake"
    assert model_turn["parts"][-1]["function_call"] == {"name": "read", "args": {"p": 1}}


# ---- errors ----


async def test_rate_limit_is_retryable_with_retry_after(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(status=429, retry_after="2", error_message="slow down"))

    with pytest.raises(ProviderError) as caught:
        await collect(client, model_request(fake_provider, dialect))

    error = caught.value
    assert (error.status_code, error.retryable, error.retry_after) == (429, True, 2.0)
    assert error.message == f"{MODELS[dialect].split('/')[0]} error 429: slow down"


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (401, False), (503, True)])
async def test_error_status_sets_retryable(
    fake_provider: FakeProvider, dialect: str, client: ModelClient, status: int, retryable: bool
) -> None:
    fake_provider.script(Reply(status=status, error_message="nope"))

    with pytest.raises(ProviderError) as caught:
        await collect(client, model_request(fake_provider, dialect))

    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert caught.value.retry_after is None
    assert caught.value.message.endswith(": nope")


# Each provider's words for "the prompt is longer than the context window" (from their errors).
OVERFLOW_MESSAGES = {
    "openai": "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 130512 tokens. Please reduce the length of the messages.",
    "anthropic": "prompt is too long: 210634 tokens > 200000 maximum",
    "gemini": "The input token count (1200000) exceeds the maximum number of tokens allowed "
    "(1048576).",
}


async def test_context_overflow_is_flagged(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(status=400, error_message=OVERFLOW_MESSAGES[dialect]))
    with pytest.raises(ProviderError) as caught:
        await collect(client, model_request(fake_provider, dialect))
    assert caught.value.context_overflow and not caught.value.retryable
    assert caught.value.status_code == 400

    fake_provider.script(Reply(status=400, error_message="temperature must be at most 2"))
    with pytest.raises(ProviderError) as caught:
        await collect(client, model_request(fake_provider, dialect))
    assert not caught.value.context_overflow


@pytest.mark.parametrize("pair", OPENAI_PAIRS)
async def test_unscripted_request_fails_loudly(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    with pytest.raises(ProviderError, match=NO_REPLY_MESSAGE):
        await collect(client, model_request(fake_provider, "openai"))


async def test_failure_mid_stream_raises_retryable(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["one ", "two ", "three"], fail_after=2))
    seen: list[StreamChunk] = []

    with pytest.raises(ProviderError) as caught:
        async for chunk in client.stream(model_request(fake_provider, dialect)):
            seen.append(chunk)

    assert seen == [TextDelta("one "), TextDelta("two ")]
    assert caught.value.retryable and caught.value.status_code is None
    assert "connection failed" in caught.value.message


async def test_connection_refused_is_retryable(dialect: str, client: ModelClient) -> None:
    request = ModelRequest(MODELS[dialect], USER, api_key="k", api_base="http://127.0.0.1:9")

    with pytest.raises(ProviderError) as caught:
        await collect(client, request)

    assert caught.value.retryable
    assert "Traceback" not in caught.value.message and len(caught.value.message) < 400


# LiteLLM's own ``timeout`` (it ignores it for Gemini); the idle timeout covers every client.
@pytest.mark.parametrize("pair", ["litellm-openai", "litellm-anthropic"])
async def test_read_timeout_is_retryable(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text="never", hang_after=0))

    with pytest.raises(ProviderError) as caught:
        await collect(client, model_request(fake_provider, dialect, extra={"timeout": 0.2}))

    assert caught.value.retryable and caught.value.status_code is None
    assert caught.value.message.startswith(f"{dialect}: connection timed out")


def test_retry_after_header_forms() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    in_ten = parse_retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)})
    assert in_ten is not None and 8 <= in_ten <= 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


# ---- closing the provider stream ----


async def test_cancelling_the_consumer_closes_the_provider_stream(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["first ", "never"], hang_after=1))
    first = asyncio.Event()

    async def consume() -> None:
        async for chunk in client.stream(model_request(fake_provider, dialect)):
            assert chunk == TextDelta("first ")
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    assert fake_provider.open_streams == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert fake_provider.wait_closed(1.0)


async def test_cancelling_twice_still_closes_the_provider_stream(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["first ", "never"], hang_after=1))
    stream = client.stream(model_request(fake_provider, dialect))
    assert await anext(stream) == TextDelta("first ")
    task = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)

    task.cancel()
    await asyncio.sleep(0)  # the generator is now in its finally, closing
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(fake_provider.wait_closed, 1.0)


async def test_aclose_closes_the_provider_stream(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["a ", "b ", "c"], chunk_delay=5.0))

    async with aclosing(client.stream(model_request(fake_provider, dialect))) as stream:
        assert await anext(stream) == TextDelta("a ")
        assert fake_provider.open_streams == 1

    assert fake_provider.wait_closed(1.0)
