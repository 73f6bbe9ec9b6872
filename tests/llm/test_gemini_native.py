"""GeminiStreamClient beyond the behaviour it shares with LiteLLMClient (the ``pair`` matrix runs
those tests on both): the same StepOutput as LiteLLM for the same bytes, the same request body
LiteLLM sends, Google's error bodies, bodies the fake provider does not produce."""

import asyncio
import copy
import dataclasses
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from opencode.llm.gemini_native import GeminiStreamClient
from opencode.llm.gemini_request import DUMMY_SIGNATURE, request_body, stream_url
from opencode.llm.gemini_schema import gemini_schema
from opencode.llm.litellm_adapter import LiteLLMClient
from opencode.llm.types import (
    ChatMessage,
    ModelClient,
    ModelRequest,
    ProviderError,
    Reasoning,
    StepOutput,
    StreamChunk,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from opencode.tools.registry import default_registry
from tests.fakes.provider import FakeProvider, Reply
from tests.llm.test_openai_native import Answer, RawProvider

MODEL = "gemini/gemini-2.5-flash"
USER = (ChatMessage("user", "hi"),)
CALL_ID = re.compile(r"^call_[0-9a-f]{28}(__thought__.+)?$")


def gemini_request(api_base: str, **fields: Any) -> ModelRequest:
    fields.setdefault("messages", USER)
    return ModelRequest(fields.pop("model", MODEL), api_key="test-key", api_base=api_base, **fields)


async def run(client: ModelClient, request: ModelRequest) -> list[StreamChunk]:
    try:
        return [chunk async for chunk in client.stream(request)]
    finally:
        if (aclose := getattr(client, "aclose", None)) is not None:
            await aclose()


async def both(request: ModelRequest) -> tuple[list[StreamChunk], list[StreamChunk]]:
    """The step through LiteLLM, then natively (each gets its own copy of the tool schemas:
    LiteLLM rewrites the ones it is given)."""
    litellm_request = dataclasses.replace(request, tools=copy.deepcopy(request.tools))
    return await run(LiteLLMClient(), litellm_request), await run(GeminiStreamClient(), request)


def without_random_ids(chunks: list[StreamChunk]) -> list[Any]:
    """Made-up call ids (``call_<uuid>``) differ per run; their shape must not."""
    out: list[Any] = []
    for chunk in chunks:
        if isinstance(chunk, StepOutput):
            ids = [c.id for c in chunk.tool_calls]
            assert all(CALL_ID.match(i) or not i.startswith("call_") for i in ids), ids
            calls = [(re.sub(r"^call_[0-9a-f]{28}", "call_*", c.id), c.name, c.arguments)
                     for c in chunk.tool_calls]  # fmt: skip
            chunk = (
                chunk.text,
                chunk.reasoning,
                calls,
                chunk.finish_reason,
                chunk.usage,
                chunk.cost,
            )
        out.append(chunk)
    return out


def sse(*responses: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(r).encode() + b"\r\n\r\n" for r in responses)


def response(parts: list[dict], finish: str | None = None, usage: dict | None = None) -> dict:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **({"usageMetadata": usage} if usage else {})}


# ---- the same step as LiteLLM's ----


@pytest.mark.parametrize("model", [MODEL, "gemini/gemini-2.5-pro", "gemini/unpriced-model"])
async def test_both_clients_produce_the_same_step(fake_provider: FakeProvider, model: str) -> None:
    reply = Reply(
        reasoning=["Let me ", "look."],
        text=["I'll read ", "both."],
        tool_calls=[
            ("g1", "read", {"path": "src/ü.py", "lines": [1, 2]}),
            ("g2", "ls", "{}"),
            ("g3", "grep", {"pattern": "a\\d+", "nested": {"deep": [True, None]}}),
        ],
        input_tokens=1200,
        output_tokens=300,
        reasoning_tokens=120,
    )
    fake_provider.script(reply, reply)

    through_litellm, native = await both(gemini_request(fake_provider.gemini_base, model=model))

    assert native == through_litellm
    out = native[-1]
    assert isinstance(out, StepOutput) and out.finish_reason == "tool_calls"
    assert [c.id for c in out.tool_calls] == ["g1__thought__sig-fake", "g2", "g3"]
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.reasoning_tokens) == (
        1200,
        300,
        120,
    )
    assert (out.cost > 0) == (model != "gemini/unpriced-model")


USAGE_CASES = {
    "thoughts apart, cache with details": {
        "promptTokenCount": 1000,
        "candidatesTokenCount": 30,
        "thoughtsTokenCount": 70,
        "cachedContentTokenCount": 600,
        "totalTokenCount": 1100,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 600}],
    },
    "implicit cache": {
        "promptTokenCount": 5000,
        "candidatesTokenCount": 40,
        "cachedContentTokenCount": 4096,
        "totalTokenCount": 5040,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5000}],
    },
    "thoughts inside candidates": {
        "promptTokenCount": 100,
        "candidatesTokenCount": 30,
        "thoughtsTokenCount": 20,
        "totalTokenCount": 130,
    },
    "tool-use prompt tokens": {
        "promptTokenCount": 100,
        "toolUsePromptTokenCount": 50,
        "candidatesTokenCount": 10,
        "totalTokenCount": 160,
    },
    "over 200k (tiered price)": {
        "promptTokenCount": 250_000,
        "candidatesTokenCount": 1000,
        "thoughtsTokenCount": 500,
        "totalTokenCount": 251_500,
    },
}


@pytest.mark.parametrize("model", [MODEL, "gemini/gemini-2.5-pro"])
@pytest.mark.parametrize("case", list(USAGE_CASES))
async def test_usage_and_cost_are_counted_as_litellm_counts_them(case: str, model: str) -> None:
    usage = USAGE_CASES[case]
    body = sse(response([{"text": "o"}]), response([{"text": "k"}], "STOP", usage))
    async with RawProvider(Answer([body]), Answer([body])) as provider:
        through_litellm, native = await both(gemini_request(provider.base, model=model))

    assert native == through_litellm
    out = native[-1]
    assert isinstance(out, StepOutput) and out.cost > 0
    assert out.usage.cache_read_tokens == usage.get("cachedContentTokenCount", 0)


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter")]
    + [("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter")]
    + [("MALFORMED_FUNCTION_CALL", "stop"), ("SOMETHING_NEW", "stop")],
)
async def test_finish_reasons_map_as_in_litellm(finish: str, expected: str) -> None:
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}
    body = sse(response([{"text": "par"}]), response([], finish, usage))
    async with RawProvider(Answer([body]), Answer([body])) as provider:
        through_litellm, native = await both(gemini_request(provider.base))

    assert native == through_litellm
    assert isinstance(native[-1], StepOutput) and native[-1].finish_reason == expected


async def test_parts_in_one_response_and_made_up_call_ids() -> None:
    """Reasoning before text within a response (as LiteLLM orders them); calls without an id
    of Gemini's get ``call_<28 hex>``, the signature appended; signatures on text and thought
    parts are not kept (LiteLLM's stream drops them too)."""
    first = response(
        [
            {"text": "A", "thoughtSignature": "VFhU"},
            {"text": "B", "thought": True, "thoughtSignature": "U0lH"},
            {"functionCall": {"name": "x", "args": {"a": "é"}}, "thoughtSignature": "Q0FMTA=="},
            {"functionCall": {"name": "y", "args": {}}},
        ]
    )
    # with thoughts but no thoughtsTokenCount LiteLLM estimates them: Gemini always counts them
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 9, "thoughtsTokenCount": 2}
    body = sse(first, response([{"text": ""}], "STOP", usage))
    async with RawProvider(Answer([body]), Answer([body])) as provider:
        through_litellm, native = await both(gemini_request(provider.base))

    assert without_random_ids(native) == without_random_ids(through_litellm)
    out = native[-1]
    assert isinstance(out, StepOutput)
    assert out.reasoning == (Reasoning("B"),) and out.text == "A"
    assert out.tool_calls[0].id.endswith("__thought__Q0FMTA==")
    assert out.tool_calls[0].arguments == '{"a": "é"}'
    assert all(CALL_ID.match(call.id) for call in out.tool_calls)
    assert len({call.id for call in out.tool_calls}) == 2


# ---- the request: the body LiteLLM sends ----


def conversation() -> tuple[ChatMessage, ...]:
    return (
        ChatMessage("user", "Plan it."),
        ChatMessage("user", "And look it up."),
        ChatMessage(
            "assistant",
            "Looking.",
            (Reasoning("I should search."),),
            (
                ToolCall("g1__thought__c2lnLWE=", "websearch", '{"query": "gemini api"}'),
                ToolCall("call_0123456789abcdef0123456789ab", "todoread", "{}"),
                ToolCall("call_2", "webfetch", '{"url": "https://example.com", "timeout": 5}'),
            ),
        ),
        ChatMessage("tool", "1. result", tool_call_id="g1__thought__c2lnLWE="),
        ChatMessage("tool", '{"todos": []}', tool_call_id="call_0123456789abcdef0123456789ab"),
        ChatMessage("tool", "timed out", tool_call_id="call_2", is_error=True),
        ChatMessage("assistant", "", (Reasoning("again"),), (ToolCall("c9", "todoread", "{}"),)),
        ChatMessage("tool", "[1, 2]", tool_call_id="c9"),
        ChatMessage("user", "Thanks; now summarise."),
        ChatMessage("assistant", "Summary: ..."),
        ChatMessage("user", ""),
    )


def all_tools() -> tuple[ToolSpec, ...]:
    registry = default_registry()
    return registry.specs(registry.select(None))


BODY_CASES = [
    (MODEL, {}),
    (MODEL, {"reasoning_effort": "low"}),
    ("gemini/gemini-2.5-pro", {"reasoning_effort": "high", "temperature": 0.2, "top_p": 0.9}),
    ("gemini/gemini-2.5-flash-lite", {"reasoning_effort": "minimal", "stop": "END", "seed": 7}),
    ("gemini/gemini-3-pro-preview", {"reasoning_effort": "medium"}),
    ("gemini/gemini-3-flash-preview", {"reasoning_effort": "minimal", "top_k": 5}),
    (MODEL, {"timeout": 5, "num_retries": 2, "frequency_penalty": 0.5, "n": 1}),
    (MODEL, {"thinkingConfig": {"thinkingBudget": 99}, "max_tokens": 77, "no_such_option": 1}),
]


@pytest.mark.parametrize(("model", "extra"), BODY_CASES)
async def test_the_body_is_the_one_litellm_sends(
    fake_provider: FakeProvider, model: str, extra: dict
) -> None:
    fake_provider.script(Reply(text="ok"), Reply(text="ok"))
    request = gemini_request(
        fake_provider.gemini_base,
        model=model,
        messages=conversation(),
        system="You are terse.",
        tools=all_tools(),
        max_tokens=512,
        extra=extra,
    )

    await both(request)

    through_litellm, native = fake_provider.requests
    assert native.json == through_litellm.json
    assert (native.path, native.query) == (through_litellm.path, through_litellm.query)
    assert native.headers["x-goog-api-key"] == through_litellm.headers["x-goog-api-key"]
    assert "key=" not in native.query


async def test_a_history_replays_the_same_on_either_path(fake_provider: FakeProvider) -> None:
    """Ids and signatures one path made replay on the other: the signature rides in the id."""
    reply = Reply(reasoning="hmm", tool_calls=[("g1", "read", {"p": 1}), ("g2", "ls", {})])
    fake_provider.script(reply, reply)
    through_litellm, native = await both(gemini_request(fake_provider.gemini_base))
    for made in (through_litellm[-1], native[-1]):
        assert isinstance(made, StepOutput)
        history = (
            *USER,
            ChatMessage("assistant", made.text, made.reasoning, made.tool_calls),
            *(ChatMessage("tool", "done", tool_call_id=c.id) for c in made.tool_calls),
        )
        fake_provider.reset()
        fake_provider.script(Reply("ok"), Reply("ok"))
        await both(gemini_request(fake_provider.gemini_base, messages=history))
        first, second = fake_provider.requests
        assert first.json == second.json
        model_turn = second.json["contents"][1]["parts"]
        assert model_turn[0] == {
            "function_call": {"name": "read", "args": {"p": 1}},
            "thoughtSignature": "sig-fake",
        }


def test_gemini_3_forwards_ids_and_signs_the_first_call() -> None:
    calls = (ToolCall("c1", "ls", "{}"), ToolCall("c2", "ls", '{"a": 1}'))
    history = (
        *USER,
        ChatMessage("assistant", "", (), calls),
        ChatMessage("tool", "x", tool_call_id="c1"),
    )
    body = request_body(ModelRequest("gemini/gemini-3-pro-preview", history))

    parts = body["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == DUMMY_SIGNATURE and "thoughtSignature" not in parts[1]
    assert [p["function_call"]["id"] for p in parts] == ["c1", "c2"]
    assert body["contents"][2]["parts"][0]["function_response"]["id"] == "c1"
    assert body["generationConfig"] == {"temperature": 1.0}


def test_deliberate_differences_from_litellm() -> None:
    """Where LiteLLM would fail the step or send what Google rejects (see gemini_request)."""
    calls = (
        ToolCall("a", "ls", '{"p": 1}'),
        ToolCall("b", "ls", '{"p": 1}'),  # identical: LiteLLM drops it
        ToolCall("c", "ls", "not json"),  # LiteLLM fails the step
        ToolCall("d", "ls", ""),  # LiteLLM sends {"type": "object"}
    )
    history = (
        *USER,
        ChatMessage("assistant", "", (), calls),
        *(ChatMessage("tool", "ok", tool_call_id=c.id) for c in calls),
        ChatMessage("assistant", "and more"),
        ChatMessage("tool", "late", tool_call_id="a"),  # LiteLLM: "missing corresponding call"
    )
    body = request_body(ModelRequest(MODEL, history))

    parts = body["contents"][1]["parts"]
    assert [p["function_call"]["args"] for p in parts] == [{"p": 1}, {"p": 1}, {}, {}]
    assert len(body["contents"][2]["parts"]) == 4
    assert body["contents"][4]["parts"][0]["function_response"]["name"] == "ls"

    orphan = (*USER, ChatMessage("tool", "?", tool_call_id="nobody"))
    with pytest.raises(ProviderError, match="answers no earlier tool call"):
        request_body(ModelRequest(MODEL, orphan))


def test_the_url_and_the_key() -> None:
    assert stream_url(ModelRequest(MODEL, USER)) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    gemini_3 = stream_url(ModelRequest("gemini/gemini-3-pro-preview", USER))
    assert gemini_3.startswith("https://generativelanguage.googleapis.com/v1alpha/models/")
    custom = ModelRequest(MODEL, USER, api_base="https://gw.example/v1beta/")
    assert stream_url(custom) == (
        "https://gw.example/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )


async def test_no_key_no_header(fake_provider: FakeProvider) -> None:
    fake_provider.script(Reply(text="ok"))

    await run(GeminiStreamClient(), ModelRequest(MODEL, USER, api_base=fake_provider.gemini_base))

    assert "x-goog-api-key" not in fake_provider.requests[0].headers


# ---- tool schemas ----

SCHEMAS = {
    "pydantic with $defs and Optional": {
        "$defs": {
            "Item": {
                "properties": {
                    "name": {"title": "Name", "type": "string", "default": ""},
                    "kind": {"enum": ["a", "", "b"], "type": "string"},
                    "rank": {"enum": [1, 2], "type": "integer"},
                },
                "required": ["name"],
                "title": "Item",
                "type": "object",
                "additionalProperties": False,
            }
        },
        "properties": {
            "items": {"items": {"$ref": "#/$defs/Item"}, "type": "array", "title": "Items"},
            "first": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}], "default": None},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "A note"},
            "when": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email", "pattern": "^.+@.+$"},
        },
        "required": ["items"],
        "title": "Arguments",
        "type": "object",
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    },
    "type lists, bare arrays, empty objects": {
        "type": "object",
        "properties": {
            "id": {"type": ["string", "integer", "null"]},
            "one": {"type": ["number"]},
            "tags": {"type": "array"},
            "blob": {"type": ["object", "null"], "properties": {"k": {"type": "string"}}},
            "any": {},
            "opts": {"type": "object", "properties": {}, "required": []},
            "union": {"oneOf": [{"type": "string"}, {"type": "integer"}], "const": 3},
            "big": {"type": "integer", "exclusiveMinimum": 0, "maximum": 10, "strict": True},
        },
        "additionalProperties": True,
    },
    "recursive": {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
    },
    "no parameters at all": {},
}


async def test_tool_schemas_are_converted_as_litellm_converts_them(
    fake_provider: FakeProvider,
) -> None:
    tools = (
        *all_tools(),
        *(ToolSpec(f"t{n}", name, schema) for n, (name, schema) in enumerate(SCHEMAS.items())),
    )
    before = copy.deepcopy(tools)
    fake_provider.script(Reply(text="ok"), Reply(text="ok"))

    await both(gemini_request(fake_provider.gemini_base, tools=tools))

    through_litellm, native = fake_provider.requests
    litellm_tools = through_litellm.json["tools"][0]["function_declarations"]
    for sent, expected in zip(
        native.json["tools"][0]["function_declarations"], litellm_tools, strict=True
    ):
        assert sent == expected, sent["name"]
    assert tools == before  # unlike LiteLLM, the specs are left as they were


def test_a_schema_converts_the_same_every_time() -> None:
    schema = SCHEMAS["type lists, bare arrays, empty objects"]
    before = copy.deepcopy(schema)
    first = gemini_schema(schema)

    assert gemini_schema(schema) == first and schema == before
    assert first["properties"]["id"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]
    }


# ---- bodies and errors the fake provider does not send ----


async def test_a_prompt_google_blocked_ends_with_content_filter() -> None:
    """LiteLLMClient reports this stream as unfinished (a retryable error): no candidate ever
    carries a finishReason (see litellm_adapter.watch_gemini_finish)."""
    usage = {"promptTokenCount": 5, "totalTokenCount": 5}
    body = sse({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage})
    async with RawProvider(Answer([body])) as provider:
        chunks = await run(GeminiStreamClient(), gemini_request(provider.base))

    out = chunks[-1]
    assert isinstance(out, StepOutput) and len(chunks) == 1
    assert (out.text, out.finish_reason, out.usage.input_tokens) == ("", "content_filter", 5)


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (429, {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [RETRY_INFO]}, (True, 27.0)),
        (503, {"code": 503, "status": "UNAVAILABLE"}, (True, None)),
        (500, {"code": 500, "status": "INTERNAL"}, (True, None)),
        (400, {"code": 400, "status": "INVALID_ARGUMENT"}, (False, None)),
        (403, {"code": 403, "status": "PERMISSION_DENIED"}, (False, None)),
        (404, {"code": 404, "status": "NOT_FOUND"}, (False, None)),
    ],
)
async def test_google_error_bodies(status: int, error: dict, expected: tuple) -> None:
    body = json.dumps([{"error": {**error, "message": "it failed"}}]).encode()
    async with RawProvider(Answer([body], status=status, content_type="application/json")) as p:
        with pytest.raises(ProviderError) as caught:
            await run(GeminiStreamClient(), gemini_request(p.base))

    failure = caught.value
    assert failure.message == f"gemini error {status}: it failed"
    assert (failure.status_code, (failure.retryable, failure.retry_after)) == (status, expected)


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [
        ({"code": 429, "status": "RESOURCE_EXHAUSTED"}, 429, True),
        ({"status": "UNAVAILABLE"}, 503, True),
        ({"status": "INVALID_ARGUMENT"}, 400, False),
        ({}, 500, True),
    ],
)
async def test_an_error_event_mid_stream_fails_the_step(
    error: dict, status: int, retryable: bool
) -> None:
    body = sse(response([{"text": "Hi"}]), {"error": {**error, "message": "overloaded"}})
    async with RawProvider(Answer([body])) as provider:
        seen: list[StreamChunk] = []
        with pytest.raises(ProviderError) as caught:
            async for item in GeminiStreamClient().stream(gemini_request(provider.base)):
                seen.append(item)

    assert seen == [TextDelta("Hi")]
    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert caught.value.message == f"gemini error {status}: overloaded"


async def test_a_context_overflow_mid_stream_is_flagged() -> None:
    message = "The input token count (1200000) exceeds the maximum number of tokens allowed"
    error = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    async with RawProvider(Answer([sse(error)])) as provider:
        with pytest.raises(ProviderError) as caught:
            await run(GeminiStreamClient(), gemini_request(provider.base))

    assert caught.value.context_overflow and not caught.value.retryable


@pytest.mark.parametrize("as_array", [True, False])
async def test_a_whole_json_response_instead_of_a_stream_is_read(as_array: bool) -> None:
    """A gateway that dropped ``alt=sse`` (a JSON array), or answered ``generateContent``."""
    usage = {"promptTokenCount": 12, "candidatesTokenCount": 4, "totalTokenCount": 16}
    responses = [
        response([{"text": "Looking."}]),
        response([{"functionCall": {"name": "ls", "args": {"p": 1}}}], "STOP", usage),
    ]
    document: Any = responses if as_array else responses[1]
    body = json.dumps(document).encode()
    async with RawProvider(Answer([body], content_type="application/json")) as provider:
        chunks = await run(GeminiStreamClient(), gemini_request(provider.base))

    out = chunks[-1]
    assert isinstance(out, StepOutput)
    assert chunks[:-1] == ([TextDelta("Looking.")] if as_array else [])
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("ls", '{"p": 1}')]
    assert out.finish_reason == "tool_calls" and out.usage.input_tokens == 12


async def test_a_json_error_with_status_200_is_that_error() -> None:
    body = json.dumps({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}})
    async with RawProvider(Answer([body.encode()], content_type="application/json")) as provider:
        with pytest.raises(ProviderError) as caught:
            await run(GeminiStreamClient(), gemini_request(provider.base))

    assert (caught.value.message, caught.value.status_code) == ("gemini error 429: quota", 429)


async def test_a_non_json_error_body_is_quoted() -> None:
    async with RawProvider(Answer([b"Bad gateway"], status=502, content_type="text/html")) as p:
        with pytest.raises(ProviderError) as caught:
            await run(GeminiStreamClient(), gemini_request(p.base))

    assert caught.value.message == "gemini error 502: Bad gateway"
    assert caught.value.retryable and caught.value.status_code == 502


async def test_split_reads_comments_and_bytes_that_are_not_utf8() -> None:
    body = sse(response([{"text": "caf\x00"}])).replace(b"\\u0000", b"\xc3")
    body += b": keep-alive\n\n" + sse(response([{"text": "!"}], "STOP"))
    async with RawProvider(Answer([body[:7], body[7:30], body[30:]])) as provider:
        chunks = await run(GeminiStreamClient(), gemini_request(provider.base))

    assert chunks[:-1] == [TextDelta("caf\ufffd"), TextDelta("!")]


async def test_the_connection_is_reused() -> None:
    body = sse(response([{"text": "ok"}], "STOP"))
    async with RawProvider(Answer([body]), Answer([body]), Answer([body])) as provider:
        client = GeminiStreamClient()
        for _ in range(3):
            chunks = [c async for c in client.stream(gemini_request(provider.base))]
            assert isinstance(chunks[-1], StepOutput) and chunks[-1].text == "ok"
        await client.aclose()

    assert provider.connections == 1


# ---- idle timeout ----


@pytest.mark.parametrize("hang_after", [0, 1])
async def test_a_stalled_stream_fails_and_is_closed(
    fake_provider: FakeProvider, hang_after: int
) -> None:
    fake_provider.script(Reply(text=["first ", "never"], hang_after=hang_after))
    client = GeminiStreamClient(idle_timeout=0.3)
    seen: list[StreamChunk] = []

    with pytest.raises(ProviderError) as caught:
        async for item in client.stream(gemini_request(fake_provider.gemini_base)):
            seen.append(item)
    await client.aclose()

    assert seen == [TextDelta("first ")][:hang_after]
    assert caught.value.message == "gemini: no data for 0.3 s; the stream stalled"
    assert caught.value.retryable
    assert await asyncio.to_thread(fake_provider.wait_closed, 1.0)


def test_the_native_path_does_not_import_litellm() -> None:
    code = "import sys, opencode.llm.gemini_native; sys.exit('litellm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
