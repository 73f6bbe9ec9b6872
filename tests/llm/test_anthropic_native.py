"""AnthropicStreamClient beyond the behaviour it shares with LiteLLMClient (the ``pair`` matrix in
test_litellm_adapter, test_stream_faults and test_idle_timeout runs those on both): the same
StepOutput as LiteLLM for the same bytes, the same request body as LiteLLM sends, error events
and error bodies, whole-message bodies, and event-stream shapes the fake provider does not send.
"""

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from opencode.llm.anthropic_native import AnthropicStreamClient, estimated_tokens
from opencode.llm.anthropic_request import messages_url, request_body
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
    ToolCall,
    ToolSpec,
)
from tests.fakes.provider import FakeProvider, Reply

MODEL = "anthropic/claude-sonnet-4-5"
USER = (ChatMessage("user", "hi"),)
KEY = "sk-ant-api03-" + "Qw7Er6Ty5Ui4Op3As2DfGh1J"
TOOLS = (
    ToolSpec("read", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}}),
    ToolSpec("ls", "List", {"type": "object"}),
)


def anthropic_request(api_base: str, **fields: Any) -> ModelRequest:
    fields.setdefault("messages", USER)
    model = fields.pop("model", MODEL)
    return ModelRequest(model, api_key="test-key", api_base=api_base, **fields)


async def run(client: ModelClient, request: ModelRequest) -> list[StreamChunk]:
    return [chunk async for chunk in client.stream(request)]


async def run_native(request: ModelRequest, **options: Any) -> list[StreamChunk]:
    client = AnthropicStreamClient(**options)
    try:
        return await run(client, request)
    finally:
        await client.aclose()


async def both(fake: FakeProvider, request: ModelRequest) -> tuple[list, list]:
    """What LiteLLM and the native client make of the same (scripted twice) reply."""
    return await run(LiteLLMClient(), request), await run_native(request)


# ---- the same step as LiteLLM's ----


@pytest.mark.parametrize("model", [MODEL, "anthropic/claude-opus-4-6", "anthropic/unpriced"])
async def test_both_clients_produce_the_same_step(fake_provider: FakeProvider, model: str) -> None:
    reply = Reply(
        reasoning=["Let me ", "look at ", "both."],
        redacted_thinking="opaque==",
        text=["I'll read ", "both."],
        tool_calls=[
            ("toolu_a", "read", {"path": "src/ü.py", "lines": [1, 2]}),
            ("toolu_b", "ls", "{}"),
            ("toolu_c", "read", {"path": "b.py"}),
        ],
        input_tokens=1200,
        output_tokens=300,
    )
    fake_provider.script(reply, reply)
    request = anthropic_request(fake_provider.anthropic_base, model=model, tools=TOOLS)

    through_litellm, native = await both(fake_provider, request)

    assert native == through_litellm
    out = native[-1]
    assert isinstance(out, StepOutput) and out.finish_reason == "tool_calls"
    assert out.reasoning == (
        Reasoning("", redacted="opaque=="),
        Reasoning("Let me look at both.", "sig-fake"),
    )
    assert [(c.id, c.name) for c in out.tool_calls] == [
        ("toolu_a", "read"),
        ("toolu_b", "ls"),
        ("toolu_c", "read"),
    ]
    assert json.loads(out.tool_calls[0].arguments) == {"path": "src/ü.py", "lines": [1, 2]}
    assert out.usage.reasoning_tokens > 0  # LiteLLM's estimate from the thinking text
    assert (out.cost > 0) == (model != "anthropic/unpriced")


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("max_tokens", "length"), ("refusal", "content_filter"), ("pause_turn", "stop")],
)
async def test_stop_reasons_map_as_litellm_maps_them(
    fake_provider: FakeProvider, stop_reason: str, finish: str
) -> None:
    reply = Reply(text="cut", finish_reason=stop_reason)
    fake_provider.script(reply, reply)

    through_litellm, native = await both(
        fake_provider, anthropic_request(fake_provider.anthropic_base)
    )

    assert native == through_litellm and native[-1].finish_reason == finish


@pytest.mark.parametrize(
    ("deltas", "arguments"),
    [([], ""), ([""], "{}"), (['{"p"', ": 1}"], '{"p": 1}')],
)
async def test_tool_input_reads_as_through_litellm(
    fake_provider: FakeProvider, deltas: list[str], arguments: str
) -> None:
    """LiteLLM makes a call whose input deltas were all empty ``{}``, one without any ``""``."""
    body = sse(
        message_start(10),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}}),
        *(json_delta(0, piece) for piece in deltas),
        block_stop(0),
        message_delta("tool_use", 3),
    )
    fake_provider.script(Reply(body=body), Reply(body=body))

    through_litellm, native = await both(
        fake_provider, anthropic_request(fake_provider.anthropic_base)
    )

    assert native == through_litellm
    assert [(c.id, c.arguments) for c in native[-1].tool_calls] == [("toolu_1", arguments)]


async def test_cache_usage_is_counted_and_priced_as_litellm_does(
    fake_provider: FakeProvider,
) -> None:
    usage = {"input_tokens": 100, "cache_creation_input_tokens": 2000}
    body = sse(
        message_start(**usage, cache_read_input_tokens=5000),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "ok"),
        block_stop(0),
        message_delta("end_turn", 40),
        {"type": "message_stop"},
    )
    fake_provider.script(Reply(body=body), Reply(body=body))

    through_litellm, native = await both(
        fake_provider, anthropic_request(fake_provider.anthropic_base)
    )

    assert native == through_litellm
    out = native[-1]
    assert (out.usage.input_tokens, out.usage.output_tokens) == (7100, 40)
    assert (out.usage.cache_read_tokens, out.usage.cache_write_tokens) == (5000, 2000)
    assert out.cost > 0


async def test_reported_thinking_tokens_are_taken_as_they_are() -> None:
    body = sse(
        message_start(10),
        block_start(0, {"type": "thinking", "thinking": ""}),
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hm"},
        },
        block_stop(0),
        {
            **message_delta("end_turn", 50),
            "usage": {"output_tokens": 50, "output_tokens_details": {"thinking_tokens": 42}},
        },
    )
    chunks = await run_mock(stream_answer(body))

    assert chunks[-1].usage.reasoning_tokens == 42 and chunks[-1].reasoning == (Reasoning("hm"),)


@pytest.mark.parametrize(
    "text",
    ["Let me think.", "é🙂 " * 700, "word " * 2000 + "\n\n" + "x" * 3000, "<|endoftext|> ok"],
)
def test_thinking_tokens_are_estimated_as_litellm_estimates_them(text: str) -> None:
    litellm = pytest.importorskip("litellm")

    assert estimated_tokens(text) == litellm.token_counter(text=text, count_response_tokens=True)


# ---- the request ----

HISTORY = (
    ChatMessage("user", "Look at a.py"),
    ChatMessage("user", " "),
    ChatMessage(
        "assistant",
        "Reading it.",
        (
            Reasoning("", redacted="opaque=="),
            Reasoning("Need the file.", "sig-1"),
            Reasoning("from another provider"),
        ),
        (
            ToolCall("toolu_1", "read", '{"path": "a.py"}'),
            ToolCall("call/2", "ls", ""),
            ToolCall("toolu_3", "read", '{"path": "b.py", "lines": [1, 2'),
        ),
    ),
    ChatMessage("tool", "print(1)", tool_call_id="toolu_1"),
    ChatMessage("tool", "no such dir", tool_call_id="call/2", is_error=True),
    ChatMessage("tool", "", tool_call_id="toolu_3"),
    ChatMessage("user", "And now?"),
    ChatMessage(
        "assistant", "", (Reasoning("Done.", "sig-2"),), (ToolCall("toolu_4", "ls", "{}"),)
    ),
    ChatMessage("tool", "a.py b.py", tool_call_id="toolu_4"),
    ChatMessage("assistant", "Both files.  \n"),
)


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (MODEL, {"system": "Be brief.", "tools": TOOLS}),
        (MODEL, {"tools": TOOLS, "extra": {"reasoning_effort": "low", "temperature": 1}}),
        (MODEL, {"extra": {"reasoning_effort": "high"}, "max_tokens": 9000}),
        (MODEL, {"extra": {"thinking": {"type": "enabled", "budget_tokens": 3000}}}),
        ("anthropic/claude-opus-4-6", {"extra": {"reasoning_effort": "medium"}}),
        ("anthropic/claude-newfamily-5", {"extra": {"reasoning_effort": "low"}}),
        ("anthropic/claude-3-5-haiku-20241022", {"max_tokens": 100}),
        ("anthropic/claude-unknown-1", {"extra": {"stop": "END", "top_k": 5, "timeout": 9}}),
    ],
)
async def test_the_request_body_is_the_one_litellm_sends(
    fake_provider: FakeProvider, model: str, fields: dict
) -> None:
    fake_provider.script(Reply(text="ok"), Reply(text="ok"))
    request = anthropic_request(
        fake_provider.anthropic_base, model=model, messages=HISTORY, **fields
    )

    await both(fake_provider, request)

    through_litellm, native = (sent.json for sent in fake_provider.requests)
    assert request_body(request) == native
    failed = native["messages"][2]["content"][1]
    assert failed == {
        "type": "tool_result",
        "tool_use_id": "call_2",
        "content": "Error: no such dir",
        "is_error": True,  # the one deliberate difference: LiteLLM leaves it out
    }
    del failed["is_error"]
    assert native == through_litellm


async def test_the_request_headers(fake_provider: FakeProvider) -> None:
    fake_provider.script(Reply(text="ok"))

    await run_native(anthropic_request(fake_provider.anthropic_base))

    sent = fake_provider.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "test-key"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json["stream"] is True and "stream_options" not in sent.json


def test_the_url_is_built_as_litellm_builds_it() -> None:
    assert messages_url(None) == "https://api.anthropic.com/v1/messages"
    assert (
        messages_url("https://gw.example/anthropic/") == "https://gw.example/anthropic/v1/messages"
    )
    assert messages_url("https://gw.example/v1/messages") == "https://gw.example/v1/messages"


@pytest.mark.parametrize("client_kind", ["litellm", "native"])
async def test_arguments_that_are_not_json_fail_the_request(
    fake_provider: FakeProvider, client_kind: str
) -> None:
    broken = ChatMessage("assistant", "", (), (ToolCall("toolu_1", "ls", "not json"),))
    history = (*USER, broken, ChatMessage("tool", "x", tool_call_id="toolu_1"))
    client = LiteLLMClient() if client_kind == "litellm" else AnthropicStreamClient()
    request = anthropic_request(fake_provider.anthropic_base, messages=history)

    with pytest.raises(ProviderError) as caught:
        await run(client, request)

    error = caught.value
    assert error.status_code == 400 and not error.retryable
    assert error.message.startswith(
        "anthropic error 400: Failed to parse tool call arguments for tool 'ls'"
    )
    assert fake_provider.requests == []


# ---- error events after the 200 ----


@pytest.mark.parametrize(
    ("kind", "message", "status", "retryable", "overflow"),
    [
        ("overloaded_error", "Overloaded", 529, True, False),
        ("rate_limit_error", "slow down", 429, True, False),
        ("api_error", "Internal server error", 500, True, False),
        ("something_new", "huh", 500, True, False),
        (
            "invalid_request_error",
            "prompt is too long: 210634 tokens > 200000 maximum",
            400,
            False,
            True,
        ),
        ("permission_error", "no", 403, False, False),
    ],
)
async def test_an_error_event_fails_the_step(
    fake_provider: FakeProvider,
    kind: str,
    message: str,
    status: int,
    retryable: bool,
    overflow: bool,
) -> None:
    body = sse(
        message_start(10),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "Hi"),
        {"type": "error", "error": {"type": kind, "message": message}},
    )
    fake_provider.script(Reply(body=body))
    seen: list[StreamChunk] = []

    with pytest.raises(ProviderError) as caught:
        async for chunk in AnthropicStreamClient().stream(
            anthropic_request(fake_provider.anthropic_base)
        ):
            seen.append(chunk)

    error = caught.value
    assert seen == [TextDelta("Hi")]
    assert (error.status_code, error.retryable, error.context_overflow) == (
        status,
        retryable,
        overflow,
    )
    assert error.message == f"anthropic error {status}: {message}"


# ---- error bodies ----


@pytest.mark.parametrize(
    ("status", "kind", "headers", "retryable", "retry_after"),
    [
        (401, "authentication_error", {}, False, None),
        (403, "permission_error", {}, False, None),
        (404, "not_found_error", {}, False, None),
        (429, "rate_limit_error", {"retry-after": "7"}, True, 7.0),
        (429, "rate_limit_error", {"retry-after-ms": "1500", "retry-after": "9"}, True, 1.5),
        (500, "api_error", {}, True, None),
        (529, "overloaded_error", {"retry-after": "2"}, True, 2.0),
    ],
)
async def test_an_error_body_is_that_error(
    status: int, kind: str, headers: dict, retryable: bool, retry_after: float | None
) -> None:
    error = {"type": "error", "error": {"type": kind, "message": f"{kind} (key {KEY})"}}
    answer = json_answer(status, error, headers)

    with pytest.raises(ProviderError) as caught:
        await run_mock(answer)

    got = caught.value
    assert (got.status_code, got.retryable, got.retry_after) == (status, retryable, retry_after)
    assert got.message.startswith(f"anthropic error {status}: {kind} (key ")
    assert KEY[13:] not in got.message and KEY[13:] not in str(got)


async def test_a_request_too_large_is_a_context_overflow() -> None:
    error = {
        "type": "error",
        "error": {"type": "request_too_large", "message": "prompt is too long"},
    }

    with pytest.raises(ProviderError) as caught:
        await run_mock(json_answer(413, error))

    assert caught.value.status_code == 413 and caught.value.context_overflow
    assert not caught.value.retryable


async def test_an_html_error_page_is_quoted() -> None:
    page = b"<html><body>502 Bad Gateway</body></html>"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, content=page, headers={"content-type": "text/html"})

    with pytest.raises(ProviderError) as caught:
        await run_mock(answer)

    assert caught.value.message == "anthropic error 502: <html><body>502 Bad Gateway</body></html>"
    assert caught.value.retryable and caught.value.status_code == 502


# ---- whole bodies instead of a stream ----


async def test_a_whole_message_instead_of_a_stream_is_read(fake_provider: FakeProvider) -> None:
    """A gateway that ignores ``stream: true``."""
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "thinking", "thinking": "Need it.", "signature": "sig-1"},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"p": "é"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 3},
    }
    fake_provider.script(Reply(body=json.dumps(message).encode(), content_type="application/json"))

    chunks = await run_native(anthropic_request(fake_provider.anthropic_base))

    assert chunks[:-1] == [ReasoningDelta("Need it."), TextDelta("Looking.")]
    out = chunks[-1]
    assert out.reasoning == (Reasoning("", redacted="opaque=="), Reasoning("Need it.", "sig-1"))
    assert [(c.id, c.name, json.loads(c.arguments)) for c in out.tool_calls] == [
        ("toolu_1", "ls", {"p": "é"})
    ]
    assert out.finish_reason == "tool_calls"
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.cache_read_tokens) == (
        15,
        4,
        3,
    )


async def test_a_json_error_with_status_200_is_that_error(fake_provider: FakeProvider) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_provider.script(Reply(body=json.dumps(error).encode(), content_type="application/json"))

    with pytest.raises(ProviderError) as caught:
        await run_native(anthropic_request(fake_provider.anthropic_base))

    assert (caught.value.message, caught.value.status_code) == (
        "anthropic error 529: Overloaded",
        529,
    )
    assert caught.value.retryable


async def test_other_json_is_not_an_event_stream(fake_provider: FakeProvider) -> None:
    fake_provider.script(Reply(body=b'{"hello": "world"}', content_type="application/json"))

    with pytest.raises(ProviderError) as caught:
        await run_native(anthropic_request(fake_provider.anthropic_base))

    assert caught.value.message == (
        'anthropic: expected an event stream, got application/json: {"hello": "world"}'
    )


# ---- event-stream shapes ----


async def test_pings_unknown_events_comments_crlf_and_split_reads() -> None:
    body = sse(
        message_start(10),
        {"type": "ping"},
        block_start(0, {"type": "text", "text": "He"}),
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "citations_delta", "citation": {}},
        },
        {"type": "some_future_event", "x": 1},
    ).replace(b"\n", b"\r\n")
    # A data line without a type is read by its event: line.
    tail = (
        b": keep-alive\n\nevent: content_block_delta\ndata: "
        + json.dumps({"index": 0, "delta": {"type": "text_delta", "text": "llo"}}).encode()
        + b"\n\n"
        + sse(block_stop(0), message_delta("end_turn", 2))
    )  # no message_stop
    chunks = await run_mock(stream_answer(body[:-17], body[-17:], tail))

    assert chunks[:-1] == [TextDelta("He"), TextDelta("llo")]
    assert chunks[-1].text == "Hello" and chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage.output_tokens == 2 and chunks[-1].usage.input_tokens == 10


async def test_an_event_that_is_not_an_object_fails_the_step() -> None:
    with pytest.raises(ProviderError) as caught:
        await run_mock(stream_answer(b"event: x\ndata: [1, 2]\n\n"))

    assert (
        caught.value.message
        == "anthropic: the stream sent an event that is not a JSON object: [1, 2]"
    )
    assert caught.value.retryable


async def test_bytes_that_are_not_utf8_do_not_crash() -> None:
    body = sse(
        message_start(1),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "caf\x00"),
        block_stop(0),
        message_delta("end_turn", 1),
    ).replace(b"\\u0000", b"\xc3")

    chunks = await run_mock(stream_answer(body))

    assert chunks[0] == TextDelta("caf\ufffd") and chunks[-1].text == "caf\ufffd"


async def test_aclose_closes_only_a_client_it_created() -> None:
    async with httpx.AsyncClient() as shared:
        await AnthropicStreamClient(shared).aclose()
        assert not shared.is_closed


# ---- events, and a mock transport for bytes and headers the fake does not send ----


def sse(*events: dict) -> bytes:
    return b"".join(
        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events
    )


def message_start(input_tokens: int, **usage: int) -> dict:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    usage = {"input_tokens": input_tokens, "output_tokens": 1, **usage}
    return {"type": "message_start", "message": {**message, "model": "m", "usage": usage}}


def block_start(index: int, block: dict) -> dict:
    return {"type": "content_block_start", "index": index, "content_block": block}


def text_delta(index: int, text: str) -> dict:
    delta = {"type": "text_delta", "text": text}
    return {"type": "content_block_delta", "index": index, "delta": delta}


def json_delta(index: int, piece: str) -> dict:
    delta = {"type": "input_json_delta", "partial_json": piece}
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int) -> dict:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}}


Handler = Callable[[httpx.Request], httpx.Response]


def stream_answer(*pieces: bytes) -> Handler:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    return answer


def json_answer(status: int, document: dict, headers: dict | None = None) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=document, headers=headers or {})

    return answer


async def run_mock(answer: Handler) -> list[StreamChunk]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        request = ModelRequest(MODEL, USER, api_key=KEY, api_base="http://anthropic.test")
        return await run(AnthropicStreamClient(http), request)
