"""One model step, accumulated delta by delta, whichever client read the stream.

Both streaming paths (``litellm_adapter`` over LiteLLM's chunk objects, ``openai_native`` over
raw OpenAI SSE JSON) feed the same ``StepBuilder``, so text, reasoning, tool calls, the finish
reason, usage and cost come out of a step the same way on either path.

Cost: ``litellm.cost_per_token(model=..., usage_object=<the usage chunk>)`` prices the step from
LiteLLM's offline cost map (``LITELLM_LOCAL_MODEL_COST_MAP``, set by ``opencode.core.env``):
prompt tokens at the input price (cached ones at the cache-read price, cache writes at the
cache-write price) plus completion tokens, reasoning included, at the output price (or the
reasoning price where the map has one). A model missing from the map costs 0.0.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import litellm

from opencode.core.ids import new_id
from opencode.llm.types import (
    Reasoning,
    ReasoningDelta,
    StepOutput,
    TextDelta,
    ToolCall,
    Usage,
)

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


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StepBuilder:
    """The step so far. ``usage`` is the provider's usage as an object with OpenAI's attribute
    names (a ``litellm.Usage``), as LiteLLM's cost map reads it."""

    text: list[str] = field(default_factory=list)
    reasoning: list[Reasoning] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)  # the reasoning block being streamed
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Any = None

    def add_text(self, text: str) -> TextDelta:
        self.text.append(text)
        return TextDelta(text)

    def add_reasoning(self, text: str) -> ReasoningDelta:
        self.thinking.append(text)
        return ReasoningDelta(text)

    def add_thinking_blocks(self, blocks: Iterable[Mapping[str, Any]]) -> None:
        """Thinking text is counted from the reasoning deltas only (Anthropic repeats it in
        ``thinking_blocks``); blocks contribute signatures, which end a block, and redacted data."""
        for block in blocks:
            if block.get("type") == "redacted_thinking":
                self.reasoning.append(Reasoning(text="", redacted=block.get("data", "")))
            elif block.get("signature"):
                self.reasoning.append(Reasoning("".join(self.thinking), block["signature"]))
                self.thinking.clear()

    def add_tool_call(
        self, index: int | None, call_id: str | None, name: str | None, arguments: str | None
    ) -> None:
        """One fragment of a streamed tool call: the first carries id and name, the rest more
        of the arguments' JSON text. Fragments of one call share its ``index``."""
        index = index if index is not None else len(self.calls)
        partial = self.calls.setdefault(index, _PartialCall())
        partial.id = call_id or partial.id
        partial.name = name or partial.name
        if arguments:
            partial.arguments.append(arguments)

    def output(self, model: str) -> StepOutput:
        reasoning = list(self.reasoning)
        if self.thinking:  # unsigned reasoning (OpenAI-compatible, Gemini)
            reasoning.append(Reasoning("".join(self.thinking)))
        calls = tuple(
            ToolCall(p.id or new_id("call"), p.name, "".join(p.arguments))
            for _, p in sorted(self.calls.items())
        )
        reported = self.finish_reason or "stop"
        finish = _FINISH_REASONS.get(reported, reported)
        return StepOutput(
            text="".join(self.text),
            reasoning=tuple(reasoning),
            tool_calls=calls,
            finish_reason="tool_calls" if calls else finish,
            usage=to_usage(self.usage),
            cost=step_cost(model, self.usage),
        )


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
    """USD for one step from LiteLLM's offline cost map; 0.0 when unknown, never raises."""
    if usage is None:
        return 0.0
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, usage_object=usage)
    except Exception:  # unmapped model or a price table LiteLLM cannot read: cost unknown
        return 0.0
    return float(prompt_cost + completion_cost)
