"""One model step, accumulated delta by delta, whichever client read the stream.

Both streaming paths (``litellm_adapter`` over LiteLLM's chunk objects, ``openai_native`` over
raw OpenAI SSE JSON) feed the same ``StepBuilder``, so text, reasoning, tool calls, the finish
reason, usage and cost come out of a step the same way on either path, and so do the checks
on what the provider sent: every piece of text is scrubbed on its own channel (an emoji cut
between two chunks is rejoined, a half nothing completes becomes U+FFFD), a step's output is
capped (``ModelRequest.max_output_chars``), and a stream without a finish reason is an error.

Usage and cost: the native clients read the provider's counts into a ``Usage`` themselves, priced
by ``prices.step_cost`` from LiteLLM's offline cost map without importing LiteLLM (a server
whose requests all go native never loads it). On the LiteLLM path the usage chunk is LiteLLM's
own object, priced by ``litellm.cost_per_token(model=..., usage_object=...)`` from the same map
(``LITELLM_LOCAL_MODEL_COST_MAP``, set by ``opencode.core.env``). Either way: prompt tokens at
the input price (cached ones at the cache-read price, cache writes at the cache-write price)
plus completion tokens, reasoning included, at the output price (or the reasoning price where
the map has one). A model missing from the map costs 0.0.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opencode.core.ids import new_id
from opencode.core.text import StreamText, has_unsafe_text, scrub, scrub_json
from opencode.llm import prices
from opencode.llm.errors import output_cap_error, unfinished_stream_error
from opencode.llm.types import (
    Reasoning,
    ReasoningDelta,
    StepOutput,
    StreamChunk,
    TextDelta,
    ToolCall,
    Usage,
)

Delta = TextDelta | ReasoningDelta

_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "max_tokens": "length",
}


class _Channel:
    """One stream of provider text (the reply, the reasoning, one call's arguments): what it
    has said so far, each piece scrubbed by its own ``StreamText``, so a surrogate pair cut
    between two of its chunks is rejoined rather than replaced."""

    __slots__ = ("_parts", "_stream")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._stream = StreamText()

    def feed(self, piece: str) -> str:
        if text := self._stream.feed(piece):
            self._parts.append(text)
        return text

    def flush(self) -> str:
        """What the channel still holds back (U+FFFD for half a pair), now given up."""
        if text := self._stream.flush():
            self._parts.append(text)
        return text

    def take(self) -> str:
        """Everything said (held halves included), and the channel starts over."""
        self.flush()
        text, self._parts = "".join(self._parts), []
        return text


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: _Channel = field(default_factory=_Channel)


class StepBuilder:
    """The step so far. ``usage`` is the provider's usage: a ``Usage`` from a native client, or
    LiteLLM's usage object (OpenAI's attribute names) on the LiteLLM path; ``finish_reason`` is
    the one the provider sent, None until it has.

    ``add_*`` yield the deltas to pass on; a delta may come out later than its chunk (half an
    emoji waits for its other half), so a client ends with ``finish``, never ``output`` alone.
    Past ``max_output_chars`` characters of text, reasoning and tool arguments, ``add_*`` raise.
    """

    def __init__(self, provider: str, max_output_chars: int | None = None) -> None:
        self.provider = provider
        self.max_output_chars = max_output_chars
        self.finish_reason: str | None = None
        self.usage: Any = None
        self._chars = 0
        self._text = _Channel()
        self._thinking = _Channel()  # the reasoning block being streamed
        self._reasoning: list[Reasoning] = []
        self._calls: dict[int, _PartialCall] = {}

    def add_text(self, text: str) -> Iterator[Delta]:
        self._count(text)
        yield from self._given_up(self._thinking, ReasoningDelta)
        if piece := self._text.feed(text):
            yield TextDelta(piece)

    def add_reasoning(self, text: str) -> Iterator[Delta]:
        self._count(text)
        yield from self._given_up(self._text, TextDelta)
        if piece := self._thinking.feed(text):
            yield ReasoningDelta(piece)

    def add_thinking_blocks(self, blocks: Iterable[Mapping[str, Any]]) -> Iterator[Delta]:
        """Thinking text is counted from the reasoning deltas only (Anthropic repeats it in
        ``thinking_blocks``); blocks contribute signatures, which end a block, and redacted data."""
        for block in blocks:
            if block.get("type") == "redacted_thinking":
                redacted = scrub(str(block.get("data", "")))
                self._reasoning.append(Reasoning(text="", redacted=redacted))
            elif signature := block.get("signature"):
                yield from self._given_up(self._thinking, ReasoningDelta)
                self._reasoning.append(Reasoning(self._thinking.take(), scrub(str(signature))))

    def add_tool_call(
        self, index: int | None, call_id: str | None, name: str | None, arguments: str | None
    ) -> None:
        """One fragment of a streamed tool call: the first carries id and name, the rest more
        of the arguments' JSON text. Fragments of one call share its ``index``."""
        index = index if index is not None else len(self._calls)
        partial = self._calls.setdefault(index, _PartialCall())
        partial.id = scrub(call_id) if call_id else partial.id
        partial.name = scrub(name) if name else partial.name
        if arguments:
            if not isinstance(arguments, str):  # a gateway that sent the arguments decoded
                arguments = json.dumps(arguments, ensure_ascii=False)
            self._count(arguments)
            partial.arguments.feed(arguments)

    def finish(self, model: str) -> Iterator[StreamChunk]:
        """The end of the stream: what the channels still hold, as deltas, then the StepOutput.
        A stream that ends without a finish reason was cut short (a gateway or proxy closed it
        cleanly mid-answer, or sent nothing at all), and what it said is not the whole step."""
        if self.finish_reason is None:
            raise unfinished_stream_error(self.provider)
        yield from self._given_up(self._thinking, ReasoningDelta)
        yield from self._given_up(self._text, TextDelta)
        yield self.output(model)

    def output(self, model: str) -> StepOutput:
        """The step as one ``StepOutput``. ``usage`` may be a ``Usage`` already (the native
        clients read the provider's counts themselves), priced by ``prices``."""
        reasoning = list(self._reasoning)
        if thinking := self._thinking.take():  # unsigned reasoning (OpenAI-compatible, Gemini)
            reasoning.append(Reasoning(thinking))
        calls = tuple(
            ToolCall(p.id or new_id("call"), p.name, safe_arguments(p.arguments.take()))
            for _, p in sorted(self._calls.items())
        )
        if isinstance(self.usage, Usage):
            usage, cost = self.usage, prices.step_cost(model, self.usage)
        else:
            usage, cost = to_usage(self.usage), step_cost(model, self.usage)
        reported = self.finish_reason or "stop"
        finish = _FINISH_REASONS.get(reported, reported)
        return StepOutput(
            text=self._text.take(),
            reasoning=tuple(reasoning),
            tool_calls=calls,
            finish_reason="tool_calls" if calls else finish,
            usage=usage,
            cost=cost,
        )

    def _count(self, piece: str) -> None:
        self._chars += len(piece)
        if self.max_output_chars is not None and self._chars > self.max_output_chars:
            raise output_cap_error(self.provider, self.max_output_chars)

    @staticmethod
    def _given_up(channel: _Channel, delta: type[Delta]) -> Iterator[Delta]:
        """Another channel spoke, or the stream ended: a half pair held back here will not be
        completed, and reaches the user as U+FFFD."""
        if held := channel.flush():
            yield delta(held)


def safe_arguments(arguments: str) -> str:
    """Tool-call arguments that decode to safe text. A model can write a lone surrogate or a
    NUL as a JSON escape (``"\\ud800"``): the text is clean, but whatever decodes it gets
    the unsafe code point back. Such arguments are re-encoded from their scrubbed value; text
    that is not JSON is left as it is (the tool registry reports it to the model)."""
    if "\\u" not in arguments:
        return arguments
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    if not _holds_unsafe_text(value):
        return arguments
    return json.dumps(scrub_json(value), ensure_ascii=False)


def _holds_unsafe_text(value: object) -> bool:
    if isinstance(value, str):
        return has_unsafe_text(value)
    if isinstance(value, list):
        return any(_holds_unsafe_text(item) for item in value)
    if isinstance(value, dict):
        return any(has_unsafe_text(k) or _holds_unsafe_text(v) for k, v in value.items())
    return False


def to_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    completion = getattr(usage, "completion_tokens_details", None)
    prompt = getattr(usage, "prompt_tokens_details", None)
    cache_read = getattr(prompt, "cached_tokens", None) or getattr(
        usage, "cache_read_input_tokens", None
    )
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        reasoning_tokens=getattr(completion, "reasoning_tokens", None) or 0,
        cache_read_tokens=cache_read or 0,
        cache_write_tokens=getattr(usage, "cache_creation_input_tokens", None) or 0,
    )


def step_cost(model: str, usage: Any) -> float:
    """USD for one step whose usage is LiteLLM's own object, by ``litellm.cost_per_token``;
    0.0 when unknown, never raises. Only the LiteLLM path has such objects, so LiteLLM is
    imported already whenever this is called (without a usage it is not needed at all)."""
    if usage is None:
        return 0.0
    import litellm

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, usage_object=usage)
    except Exception:  # unmapped model or a price table LiteLLM cannot read: cost unknown
        return 0.0
    # USD to 10 places: float sums like 0.000011099999999999999 would reach the client as is.
    return round(float(prompt_cost + completion_cost), 10)
