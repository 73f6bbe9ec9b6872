"""The assistant message as it is being generated: parts built from agent events.

Kept in memory during a run and flushed to the store at step boundaries (and every second
while text streams), so a reader or a crash sees at most a second of lag.
"""

import json
from dataclasses import asdict
from typing import Any

from opencode.llm.types import StepOutput, ToolCall, Usage
from opencode.tools.registry import ToolResult


class Draft:
    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.usage = Usage()
        self.cost = 0.0
        self._step_index = 0  # index of the current step-start part

    @property
    def content(self) -> str:
        return "".join(p["text"] for p in self.parts if p["type"] == "text")

    def step_start(self, step_number: int) -> None:
        self._step_index = len(self.parts)
        self.parts.append({"type": "step-start", "step_number": step_number})

    def text(self, delta: str) -> None:
        self._append("text", delta)

    def reasoning(self, delta: str) -> None:
        self._append("reasoning", delta)

    def tool_called(self, call: ToolCall) -> None:
        self.parts.append(
            {
                "type": "tool",
                "call_id": call.id,
                "name": call.name,
                "arguments": parse_arguments(call.arguments),
                "state": "pending",
                "output": None,
            }
        )

    def step_finish(self, step_number: int, output: StepOutput) -> None:
        """Record usage; replace streamed reasoning with the final blocks (they carry the
        signatures Anthropic needs replayed); mark this step's tool calls running."""
        self.usage, self.cost = self.usage + output.usage, self.cost + output.cost
        step = self.parts[self._step_index :]
        kept = [p for p in step if p["type"] != "reasoning"]
        blocks = [
            {"type": "reasoning", "text": r.text, "signature": r.signature, "redacted": r.redacted}
            for r in output.reasoning
        ]
        self.parts[self._step_index :] = kept[:1] + blocks + kept[1:]
        for part in self.parts[self._step_index :]:
            if part["type"] == "tool":
                part["state"] = "running"
        self.parts.append(
            {
                "type": "step-finish",
                "step_number": step_number,
                "stop_reason": output.finish_reason,
                "cost": output.cost,
                "usage": asdict(output.usage),
            }
        )

    def tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        for part in reversed(self.parts):
            if part["type"] == "tool" and part["call_id"] == call.id:
                part["state"] = "error" if result.is_error else "completed"
                part["output"] = result.text
                return

    def usage_dict(self) -> dict[str, int]:
        return asdict(self.usage)

    def _append(self, kind: str, delta: str) -> None:
        last = self.parts[-1] if self.parts else None
        if last is not None and last["type"] == kind:
            last["text"] += delta
        else:
            self.parts.append({"type": kind, "text": delta})


def parse_arguments(arguments: str) -> Any:
    """Arguments as JSON when they parse (what clients want), else the raw text the model sent."""
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
