"""What the agent loop yields. Internal: ``services/runs.py`` turns them into stream events."""

from dataclasses import dataclass

from opencode.llm.types import StepOutput, ToolCall, Usage
from opencode.tools.registry import ToolResult


@dataclass(frozen=True)
class StepStarted:
    step_number: int


@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class ReasoningChunk:
    text: str


@dataclass(frozen=True)
class ToolCalled:
    """The model asked for this call (emitted when its step's stream ends, before StepFinished)."""

    call: ToolCall


@dataclass(frozen=True)
class StepFinished:
    step_number: int
    output: StepOutput


@dataclass(frozen=True)
class ToolFinished:
    call: ToolCall
    result: ToolResult


@dataclass(frozen=True)
class TurnFinished:
    stop_reason: str  # "stop" | "length" | "max_steps" | provider-specific finish reason
    usage: Usage
    cost: float


AgentEvent = (
    StepStarted
    | TextChunk
    | ReasoningChunk
    | ToolCalled
    | StepFinished
    | ToolFinished
    | TurnFinished
)
