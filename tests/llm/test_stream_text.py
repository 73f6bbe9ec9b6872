"""Provider text made safe where it enters: surrogate pairs cut between chunks are rejoined,
halves nothing completes become U+FFFD (in the stream, not only in the StepOutput), escaped
halves in tool arguments are re-encoded; error text carries no key; costs carry no float noise."""

import dataclasses
import json
import time

import litellm
import pytest

from opencode.core.text import has_unsafe_text
from opencode.llm.accumulate import StepBuilder, safe_arguments, step_cost
from opencode.llm.errors import line_too_long_error
from opencode.llm.sse import EventLines
from opencode.llm.types import (
    ModelClient,
    ProviderError,
    Reasoning,
    ReasoningDelta,
    StepOutput,
    StreamChunk,
    TextDelta,
)
from tests.fakes.provider import FakeProvider, Reply
from tests.llm.test_litellm_adapter import collect, model_request

EMOJI = "\U0001f600"  # 😀, "\ud83d\ude00" in UTF-16


def encodable(chunks: list[StreamChunk]) -> bytes:
    """Everything the step produced, as the server would store and send it."""
    return json.dumps([dataclasses.asdict(c) for c in chunks], ensure_ascii=False).encode()


def joined(chunks: list[StreamChunk], kind: type) -> str:
    return "".join(chunk.text for chunk in chunks if isinstance(chunk, kind))


async def test_an_emoji_split_between_chunks_is_rejoined(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(Reply(text=["Hi \ud83d", "\ude00 there"]))

    deltas, out = await collect(client, model_request(fake_provider, dialect))

    assert joined(deltas, TextDelta) == out.text == f"Hi {EMOJI} there"
    encodable([*deltas, out])


async def test_lone_surrogates_become_replacement_characters(
    fake_provider: FakeProvider, dialect: str, client: ModelClient
) -> None:
    fake_provider.script(
        Reply(
            reasoning=["Think \ud83d"],
            text=["Hi \ud83d", " there \udc00", "end \ud83d"],
            tool_calls=[("c1", "find", '{"q": "\\ud800x"}')],  # the model escaped half a pair
        )
    )

    deltas, out = await collect(client, model_request(fake_provider, dialect))

    assert joined(deltas, TextDelta) == out.text == "Hi \ufffd there \ufffdend \ufffd"
    assert deltas[-1] == TextDelta("\ufffd")  # the half held to the end, given up in the stream
    assert joined(deltas, ReasoningDelta) == out.reasoning[0].text == "Think \ufffd"
    assert json.loads(out.tool_calls[0].arguments) == {"q": "\ufffdx"}
    assert not has_unsafe_text(out.tool_calls[0].arguments)
    encodable([*deltas, out])


def test_escaped_halves_in_tool_arguments_are_re_encoded() -> None:
    assert (
        safe_arguments('{"q": "\\ud800x", "n": [1, "\\u0000"]}') == '{"q": "\ufffdx", "n": [1, ""]}'
    )
    pair = '{"q": "\\ud83d\\ude00"}'  # a whole pair, escaped: safe, left as written
    assert safe_arguments(pair) == pair
    assert (
        safe_arguments('{"q": "\\\\ud800"}') == '{"q": "\\\\ud800"}'
    )  # a backslash, not an escape
    assert safe_arguments('{"q": "\\ud800') == '{"q": "\\ud800'  # not JSON: the registry says so


def test_cost_has_no_float_noise() -> None:
    usage = litellm.Usage(prompt_tokens=74, completion_tokens=0)
    raw = sum(litellm.cost_per_token(model="openai/gpt-4o-mini", usage_object=usage))
    assert raw != 1.11e-05  # 0.000011099999999999999: what rounding is for

    assert step_cost("openai/gpt-4o-mini", usage) == 1.11e-05


def test_provider_error_text_is_scrubbed_and_redacted() -> None:
    key = "sk-proj-" + "Zx81Qw7Er6Ty5Ui4Op3As2Df"

    error = ProviderError(f"bad gateway \ud83d for Bearer {key}\x00", status_code=502)

    assert error.message == str(error) == "bad gateway \ufffd for Bearer [redacted]"
    assert error.status_code == 502


def test_anthropic_style_reasoning_blocks_are_scrubbed() -> None:
    step = StepBuilder("anthropic")
    deltas = [*step.add_reasoning("Hmm \ud83d")]
    deltas += step.add_thinking_blocks([{"type": "thinking", "signature": "s\udc00g"}])
    deltas += step.add_thinking_blocks([{"type": "redacted_thinking", "data": "op\ud800aque"}])
    step.add_tool_call(0, "id\ud800", "na\udc00me", '{"a": 1}')
    step.finish_reason = "tool_use"

    chunks = [*deltas, *step.finish("anthropic/claude-sonnet-4-5")]

    assert deltas == [ReasoningDelta("Hmm "), ReasoningDelta("\ufffd")]
    out = chunks[-1]
    assert isinstance(out, StepOutput)
    assert out.reasoning == (
        Reasoning("Hmm \ufffd", "s\ufffdg"),
        Reasoning("", redacted="op\ufffdaque"),
    )
    assert (out.tool_calls[0].id, out.tool_calls[0].name) == ("id\ufffd", "na\ufffdme")
    encodable(chunks)


# ---- event-stream lines ----


def test_a_long_line_in_many_reads_is_joined_in_linear_time() -> None:
    line = b"data: " + b"x" * 999_000
    reads = [line[i : i + 50] for i in range(0, len(line), 50)] + [b"\n\n"]
    lines = EventLines("openai", 2**20)
    started = time.process_time()

    out = [complete for read in reads for complete in lines.feed(read)]

    assert out == [line, b""]
    # ~20,000 reads: ~10 ms when the line is joined once, over 0.5 s when at every read
    assert time.process_time() - started < 0.2


@pytest.mark.parametrize(
    "reads", [[b"x" * (2**20 + 1)], [b"x" * 2**20, b"y\n"], [b"a\n" + b"x" * (2**20 + 1) + b"\n"]]
)
def test_a_line_over_the_cap_fails(reads: list[bytes]) -> None:
    lines = EventLines("openai", 2**20)

    with pytest.raises(ProviderError) as caught:
        for read in reads:
            lines.feed(read)

    assert caught.value.message == line_too_long_error("openai", 2**20).message
    assert caught.value.message == "openai: the event stream sent a line longer than 1 MiB"


def test_crlf_and_an_unterminated_last_line() -> None:
    lines = EventLines("openai", 2**20)

    assert lines.feed(b"data: 1\r\n\r\nda") == [b"data: 1\r", b"\r"]
    assert lines.feed(b"ta: 2") == []
    assert lines.end() == b"data: 2"
