"""The fake provider's contract beyond what tests/llm exercises: plain JSON completions,
error bodies, noticing a client that goes away, and the bytes each fault knob puts on the wire
in every dialect."""

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


async def test_a_default_reply_answers_unscripted_requests() -> None:
    with FakeProvider(default=Reply(text="always")) as fake:
        fake.script(Reply(text="scripted"))
        async with httpx.AsyncClient(base_url=fake.base_url) as client:
            bodies = [
                (await client.post("/v1/chat/completions", json={"model": "m"})).json()
                for _ in range(3)
            ]
    texts = [body["choices"][0]["message"]["content"] for body in bodies]
    assert texts == ["scripted", "always", "always"]


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


# ---- fault knobs, on the wire ----

STREAM_PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/m:streamGenerateContent",
}
# What only the finish of a stream carries, in each dialect.
FINISH_MARKERS = {
    "openai": ['"finish_reason": "stop"', '"usage"', "[DONE]"],
    "anthropic": ["message_delta", "message_stop"],
    "gemini": ["finishReason"],
}
STREAM_BODY = {"stream": True, "stream_options": {"include_usage": True}}


async def raw_stream(fake: FakeProvider, dialect: str, **options) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.base_url, **options) as client:
        return await client.post(STREAM_PATHS[dialect], params={"alt": "sse"}, json=STREAM_BODY)


def data_events(body: str) -> list[dict]:
    return [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data: {")]


@pytest.mark.parametrize("dialect", list(MODELS))
@pytest.mark.parametrize("cut_after", [None, 2, 3])
async def test_cut_after_ends_the_body_without_the_finish(
    fake: FakeProvider, dialect: str, cut_after: int | None
) -> None:
    fake.script(Reply(text=["one ", "two ", "three"], cut_after=cut_after))

    body = (await raw_stream(fake, dialect)).text

    sent = ["one ", "two ", "three"][: cut_after or 3]
    assert all(f'"{word}"' in body for word in sent)
    assert ('"three"' in body) == (cut_after != 2)
    assert [marker in body for marker in FINISH_MARKERS[dialect]] == [cut_after is None] * len(
        FINISH_MARKERS[dialect]
    )


@pytest.mark.parametrize("dialect", list(MODELS))
async def test_cut_after_zero_is_an_empty_body(fake: FakeProvider, dialect: str) -> None:
    fake.script(Reply(text="never sent", cut_after=0))

    response = await raw_stream(fake, dialect)

    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"] == "text/event-stream"


@pytest.mark.parametrize("dialect", list(MODELS))
async def test_a_scripted_body_is_the_whole_response(fake: FakeProvider, dialect: str) -> None:
    page = b"<html><body>Please log in</body></html>"
    fake.script(Reply(text="unused", body=page, content_type="text/html; charset=utf-8"))

    response = await raw_stream(fake, dialect)

    assert (response.status_code, response.content) == (200, page)
    assert response.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("dialect", list(MODELS))
async def test_invalid_json_line_then_the_stream_goes_on(fake: FakeProvider, dialect: str) -> None:
    fake.script(Reply(text=["one ", "two"], invalid_json_after=1))

    body = (await raw_stream(fake, dialect)).text

    bad = body.index("data: {this is not json\n\n")
    assert body.index('"one "') < bad < body.index('"two"')
    assert body.count("this is not json") == 1
    assert all(marker in body for marker in FINISH_MARKERS[dialect])


@pytest.mark.parametrize("dialect", list(MODELS))
async def test_an_endless_stream_runs_until_the_client_leaves(
    fake: FakeProvider, dialect: str
) -> None:
    fake.script(Reply(text="start ", endless=True))
    lines = []

    async with (
        httpx.AsyncClient(base_url=fake.base_url) as client,
        client.stream("POST", STREAM_PATHS[dialect], json=STREAM_BODY) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data:") and '"w' in line:
                lines.append(line)
            if len(lines) == 300:
                break

    assert len(set(lines)) == 300  # every chunk different, as LiteLLM requires
    assert await asyncio.to_thread(fake.wait_closed, 2.0)


@pytest.mark.parametrize("dialect", list(MODELS))
async def test_a_huge_line_is_never_terminated(fake: FakeProvider, dialect: str) -> None:
    fake.script(Reply(text=["first ", "second"], huge_line=300_000))

    body = (await raw_stream(fake, dialect)).content

    head, _, huge = body.rpartition(b"\n")
    assert b'"first "' in head and b"second" not in body
    assert len(huge) == 300_000 and huge.startswith(b"data: xxx")


async def test_hang_headers_never_starts_the_response(fake: FakeProvider) -> None:
    fake.script(Reply(text="never", hang_headers=True))

    with pytest.raises(httpx.ReadTimeout):
        await raw_stream(fake, "openai", timeout=httpx.Timeout(5.0, read=0.3))

    assert len(fake.requests) == 1
    assert await asyncio.to_thread(fake.wait_closed, 2.0)


KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2"


@pytest.mark.parametrize(
    ("dialect", "headers", "echoed"),
    [
        ("openai", {"Authorization": f"Bearer {KEY}"}, f"authorization: Bearer {KEY}"),
        ("anthropic", {"x-api-key": KEY}, f"x-api-key: {KEY}"),
        ("gemini", {"x-goog-api-key": KEY}, f"x-goog-api-key: {KEY}"),
        ("gemini", {}, f"key={KEY}"),
    ],
)
async def test_echo_auth_quotes_the_credentials(
    fake: FakeProvider, dialect: str, headers: dict, echoed: str
) -> None:
    fake.script(Reply(status=401, error_message="bad key", echo_auth=True))

    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        params = {"alt": "sse"} if headers else {"alt": "sse", "key": KEY}
        response = await client.post(STREAM_PATHS[dialect], params=params, json=STREAM_BODY)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == f"bad key (request had {echoed})"


def _text_and_arguments(dialect: str, events: list[dict]) -> tuple[list[str], object]:
    """The text pieces and the (first) tool call's arguments, as each dialect's JSON says."""
    if dialect == "openai":
        deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
        calls = [c["function"]["arguments"] for d in deltas for c in d.get("tool_calls", ())]
        return [d["content"] for d in deltas if d.get("content")], json.loads("".join(calls))
    if dialect == "anthropic":
        deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
        calls = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
        return [d["text"] for d in deltas if d["type"] == "text_delta"], json.loads("".join(calls))
    parts = [p for e in events for p in e["candidates"][0]["content"]["parts"]]
    calls = [p["functionCall"]["args"] for p in parts if "functionCall" in p]
    return [p["text"] for p in parts if "text" in p], calls[0]


@pytest.mark.parametrize("dialect", list(MODELS))
async def test_lone_surrogates_go_out_as_json_escapes(fake: FakeProvider, dialect: str) -> None:
    raw = '{"q": "\\ud800x"}'  # as a model writes it: an escape of half a pair
    fake.script(Reply(text=["Hi \ud83d", "\ude00 there"], tool_calls=[("c1", "f", raw)]))

    body = (await raw_stream(fake, dialect)).content

    # ASCII: every surrogate went out as an escape (as UTF-8 it could not have been encoded)
    assert body.isascii() and b"\\ud83d" in body and b"\\ude00" in body
    text, arguments = _text_and_arguments(dialect, data_events(body.decode()))
    assert text == ["Hi \ud83d", "\ude00 there"]
    assert arguments == {"q": "\ud800x"}
