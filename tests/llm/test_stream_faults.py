"""Provider faults after (or instead of) a good start, on every path (the ``pair`` fixture): each
ends as a clear ProviderError, never as a silent success, a crash or a hang, and the provider
stream is closed."""

import asyncio
import dataclasses
import json
import time

import pytest

from opencode.llm.openai_native import OpenAIStreamClient
from opencode.llm.types import ModelClient, ModelRequest, ProviderError, StreamChunk, TextDelta
from tests.fakes.provider import FakeProvider, Reply
from tests.llm.conftest import client_class
from tests.llm.test_litellm_adapter import collect, model_request

KEY = "sk-proj-" + "Zx81Qw7Er6Ty5Ui4Op3As2Df"  # shaped like a real OpenAI project key
IDLE = 0.3


async def failure(
    client: ModelClient, request: ModelRequest
) -> tuple[list[StreamChunk], ProviderError]:
    """What the stream yielded before it failed, and how it failed."""
    seen: list[StreamChunk] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in client.stream(request):
            seen.append(chunk)
    return seen, caught.value


def texts(*pieces: str) -> list[TextDelta]:
    return [TextDelta(piece) for piece in pieces]


async def closed(fake: FakeProvider) -> bool:
    return await asyncio.to_thread(fake.wait_closed, 2.0)


# ---- streams that end too soon, or are not streams ----


@pytest.mark.parametrize("cut_after", [0, 1, 2])
async def test_a_stream_cut_short_fails_retryable(
    fake_provider: FakeProvider, dialect: str, client: ModelClient, cut_after: int
) -> None:
    fake_provider.script(Reply(text=["one ", "two"], cut_after=cut_after))

    seen, error = await failure(client, model_request(fake_provider, dialect))

    assert seen == texts("one ", "two")[:cut_after]
    assert error.message == f"{dialect}: the stream ended before the model finished"
    assert error.retryable and error.status_code is None
    assert await closed(fake_provider)


async def test_a_tool_call_cut_short_is_not_a_tool_call(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    arguments = {"path": "a.py", "content": "print(1)\n" * 5}
    fake_provider.script(Reply(tool_calls=[("c1", "write", arguments)], cut_after=2))

    _, error = await failure(client, model_request(fake_provider, dialect))

    assert error.message == f"{dialect}: the stream ended before the model finished"


async def test_an_empty_event_stream_fails_retryable(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(body=b"", content_type="text/event-stream"))

    seen, error = await failure(client, model_request(fake_provider, dialect))

    assert seen == []
    assert error.message == f"{dialect}: the stream ended before the model finished"
    assert error.retryable


async def test_a_200_html_page_is_not_an_event_stream(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    page = b"<html>\n<body>Sign in to the corporate proxy</body>\n</html>"
    fake_provider.script(Reply(body=page, content_type="text/html; charset=utf-8"))

    seen, error = await failure(client, model_request(fake_provider, dialect))

    assert seen == []
    assert error.message.startswith(f"{dialect}: expected an event stream, got text/html")
    assert error.retryable and error.status_code is None


@pytest.mark.parametrize("pair", ["native-openai"])
async def test_the_native_client_quotes_the_page(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    page = b"<html>\n<body>Sign in to the corporate proxy</body>\n</html>"
    fake_provider.script(Reply(body=page, content_type="text/html"))

    _, error = await failure(client, model_request(fake_provider, "openai"))

    assert error.message == (
        "openai: expected an event stream, got text/html: "
        "<html> <body>Sign in to the corporate proxy</body> </html>"
    )


@pytest.mark.parametrize("invalid_after", [0, 1])
async def test_a_line_that_is_not_json_fails_retryable(
    fake_provider: FakeProvider, dialect: str, client: ModelClient, invalid_after: int
) -> None:
    fake_provider.script(Reply(text=["one ", "two"], invalid_json_after=invalid_after))

    seen, error = await failure(client, model_request(fake_provider, dialect))

    # Anthropic's and Gemini's LiteLLM iterators drop the rest of the stream silently; OpenAI's
    # fail at the line: either way nothing after it reaches the user, and the step fails.
    assert seen == texts("one ")[:invalid_after]
    assert error.message.startswith(f"{dialect}: the stream sent a line that is not JSON")
    assert error.retryable
    assert await closed(fake_provider)


@pytest.mark.parametrize("pair", ["native-openai", "litellm-openai"])
async def test_openai_paths_quote_the_line(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["one "], invalid_json_after=1))

    _, error = await failure(client, model_request(fake_provider, "openai"))

    assert error.message == "openai: the stream sent a line that is not JSON: {this is not json"


# ---- streams that do not end ----


async def test_an_endless_stream_stops_at_the_output_cap(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text="start ", endless=True))
    started = time.monotonic()

    seen, error = await failure(
        client, model_request(fake_provider, dialect, max_output_chars=1000)
    )

    assert error.message == (
        f"{dialect}: the model's output passed 1000 characters in one step "
        "(OPENCODE_MAX_STEP_OUTPUT_CHARS); the step was stopped"
    )
    assert not error.retryable
    assert 900 < sum(len(chunk.text) for chunk in seen if isinstance(chunk, TextDelta)) <= 1000
    assert time.monotonic() - started < 3
    assert await closed(fake_provider)


async def test_tool_arguments_count_toward_the_output_cap(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text="ok", tool_calls=[("c1", "write", {"content": "x" * 3000})]))

    _, error = await failure(client, model_request(fake_provider, dialect, max_output_chars=2000))

    assert "passed 2000 characters in one step" in error.message


async def test_under_the_output_cap_nothing_changes(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["a" * 500, "b" * 500], reasoning="r" * 100))

    _, out = await collect(client, model_request(fake_provider, dialect, max_output_chars=1100))

    assert out.text == "a" * 500 + "b" * 500


@pytest.mark.parametrize("pair", ["native-openai"])
async def test_a_huge_line_fails_the_native_client_at_once(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["first ", "second"], huge_line=20 * 2**20))
    cpu, started = time.process_time(), time.monotonic()

    seen, error = await failure(client, model_request(fake_provider, "openai"))

    assert seen == texts("first ")
    assert error.message == "openai: the event stream sent a line longer than 1 MiB"
    assert not error.retryable
    assert time.process_time() - cpu < 0.5 and time.monotonic() - started < 2
    assert await closed(fake_provider)


# What LiteLLM 1.106 makes of a 2 MiB line that the body ends without a newline after: Anthropic
# and Gemini read it whole (httpx's line splitting is linear) and take it for JSON split in
# transit; the openai SDK joins it at quadratic cost and drops it at the end of the body.
HUGE_LINE_ERRORS = {
    "anthropic": "anthropic: the stream sent a line that is not JSON",
    "gemini": "gemini: the stream sent a line that is not JSON",
    "openai": "openai: the stream ended before the model finished",
}


@pytest.mark.parametrize("pair", ["litellm-openai", "litellm-anthropic", "litellm-gemini"])
async def test_a_huge_line_fails_the_litellm_client(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["first ", "second"], huge_line=2 * 2**20))
    started = time.monotonic()

    seen, error = await failure(client, model_request(fake_provider, dialect))

    assert seen == texts("first ")
    assert error.message == HUGE_LINE_ERRORS[dialect] and error.retryable
    assert time.monotonic() - started < 5
    assert await closed(fake_provider)


async def test_a_provider_that_never_sends_headers_hits_the_idle_timeout(
    fake_provider: FakeProvider, pair: str, dialect: str
) -> None:
    fake_provider.script(Reply(text="never", hang_headers=True))
    client = client_class(pair)(idle_timeout=IDLE)
    started = time.monotonic()

    try:
        seen, error = await failure(client, model_request(fake_provider, dialect))
    finally:
        if isinstance(client, OpenAIStreamClient):
            await client.aclose()

    assert seen == []
    assert error.message == f"{dialect}: no data for 0.3 s; the stream stalled"
    assert error.retryable and IDLE <= time.monotonic() - started < IDLE + 2
    assert await closed(fake_provider)


# ---- error bodies ----


async def test_a_401_that_echoes_the_key_does_not_pass_it_on(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(status=401, error_message="invalid api key", echo_auth=True))
    request = dataclasses.replace(model_request(fake_provider, dialect), api_key=KEY)

    with pytest.raises(ProviderError) as caught:
        await collect(client, request)

    sent = fake_provider.requests[0]
    assert KEY in json.dumps(sent.headers) + sent.query  # the key went out, so the fake quoted it
    error = caught.value
    assert error.status_code == 401 and not error.retryable
    assert error.message.startswith(f"{dialect} error 401: invalid api key (request had ")
    assert KEY[8:20] not in error.message and KEY[8:20] not in str(error)


# ---- the native client's reading of bodies LiteLLM never sees ----


@pytest.mark.parametrize("pair", ["native-openai"])
async def test_a_whole_completion_instead_of_a_stream_is_read(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    """A gateway that ignores ``stream: true``."""
    call = {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": '{"p": 1}'}}
    message = {"role": "assistant", "content": "Looking.", "tool_calls": [call]}
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
    fake_provider.script(
        Reply(body=json.dumps(completion).encode(), content_type="application/json")
    )

    deltas, out = await collect(client, model_request(fake_provider, "openai"))

    assert deltas == texts("Looking.")
    assert [(c.id, c.name, c.arguments) for c in out.tool_calls] == [("c1", "ls", '{"p": 1}')]
    assert out.finish_reason == "tool_calls" and out.usage.input_tokens == 12


@pytest.mark.parametrize("pair", ["native-openai"])
async def test_a_json_error_with_status_200_is_that_error(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    error_body = {"error": {"message": "quota exceeded", "code": 429}}
    fake_provider.script(
        Reply(body=json.dumps(error_body).encode(), content_type="application/json")
    )

    _, error = await failure(client, model_request(fake_provider, "openai"))

    assert (error.message, error.status_code, error.retryable) == (
        "openai error 429: quota exceeded",
        429,
        True,
    )


@pytest.mark.parametrize("pair", ["native-openai"])
async def test_bytes_that_are_not_utf8_do_not_crash(
    fake_provider: FakeProvider, client: ModelClient
) -> None:
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"

    body = chunk({"content": "caf\x00"}).replace(b"\\u0000", b"\xc3") + chunk({}, "stop")
    fake_provider.script(Reply(body=body + b"data: [DONE]\n\n"))

    deltas, out = await collect(client, model_request(fake_provider, "openai"))

    assert out.text == "caf\ufffd" and deltas == texts("caf\ufffd")
