"""Provider-neutral messages and stream chunks: the narrow seam between the agent and LiteLLM.

Nothing here knows about LiteLLM; the adapter translates both ways, so another streaming path
(a native SDK, raw httpx SSE) can replace it without touching the agent loop.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from opencode.core.redact import redact
from opencode.core.text import scrub

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model produced it


@dataclass(frozen=True)
class Reasoning:
    """A reasoning/thinking block. ``signature`` (Anthropic) must be replayed verbatim;
    ``redacted`` holds Anthropic's opaque ``redacted_thinking`` data."""

    text: str
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    text: str = ""
    reasoning: tuple[Reasoning, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # role == "tool"
    is_error: bool = False  # role == "tool"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True)
class ModelRequest:
    """One model call. ``model`` is ``provider/model`` (``openai/gpt-4o-mini``,
    ``anthropic/claude-sonnet-4-5``, ``gemini/gemini-2.5-flash``). ``max_output_chars`` caps
    the characters of text, reasoning and tool arguments one step may stream (None: no cap)."""

    model: str
    messages: tuple[ChatMessage, ...]
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    api_key: str | None = None
    api_base: str | None = None
    max_tokens: int | None = None
    max_output_chars: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # passed through to the provider call


# ---- stream chunks (what a model step yields, in order) ----


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class StepOutput:
    """Always the last chunk of a successful step: everything accumulated from the deltas."""

    text: str
    reasoning: tuple[Reasoning, ...]
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str  # normalised: "stop" | "tool_calls" | "length" | "content_filter" | other
    usage: Usage
    cost: float  # USD, from LiteLLM's offline cost map; 0.0 for unknown models


StreamChunk = TextDelta | ReasoningDelta | StepOutput


class ProviderError(Exception):
    """A failed model call. ``retryable`` marks 429/5xx/connection failures;
    ``context_overflow`` a prompt longer than the model's context window.

    The message is scrubbed and redacted here, once for every path: it quotes what providers
    and gateways sent, which may echo the request's API key or hold half an emoji."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        context_overflow: bool = False,
    ) -> None:
        message = redact(scrub(message))
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after = retry_after
        self.context_overflow = context_overflow


class ModelClient(Protocol):
    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield deltas then exactly one StepOutput; raise ProviderError on failure.

        Closing the iterator (``aclose``, or cancelling the consumer) closes the provider
        stream."""
        ...
