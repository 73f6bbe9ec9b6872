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
        self._parts: list[dict[str, Any]] = []
        self._pieces: list[str] = []  # the deltas of the last part while it streams
        self.usage = Usage()
        self.cost = 0.0
        self._step_index = 0  # index of the current step-start part

    @property
    def parts(self) -> list[dict[str, Any]]:
        """The parts so far. A streaming text or reasoning part gets its deltas joined here,
        at flush time, not per delta: appending to a string held in a dict copies it whole,
        which made a long reply quadratic."""
        if len(self._pieces) > 1:
            self._parts[-1]["text"] = "".join(self._pieces)
            self._pieces = [self._parts[-1]["text"]]
        return self._parts

    @property
    def content(self) -> str:
        return "".join(p["text"] for p in self.parts if p["type"] == "text")

    def step_start(self, step_number: int) -> None:
        self._add({"type": "step-start", "step_number": step_number})
        self._step_index = len(self._parts) - 1

    def text(self, delta: str) -> None:
        self._append("text", delta)

    def reasoning(self, delta: str) -> None:
        self._append("reasoning", delta)

    def tool_called(self, call: ToolCall) -> dict[str, Any]:
        """Add the call's part (arguments parsed) and return it."""
        part = {
            "type": "tool",
            "call_id": call.id,
            "name": call.name,
            "arguments": parse_arguments(call.arguments),
            "state": "pending",
            "output": None,
        }
        self._add(part)
        return part

    def step_finish(self, step_number: int, output: StepOutput) -> None:
        """Record usage; replace streamed reasoning with the final blocks (they carry the
        signatures Anthropic needs replayed); mark this step's tool calls running."""
        self.usage, self.cost = self.usage + output.usage, self.cost + output.cost
        parts = self.parts
        self._pieces = []  # the step's streaming is over
        step = parts[self._step_index :]
        kept = [p for p in step if p["type"] != "reasoning"]
        blocks = [
            {"type": "reasoning", "text": r.text, "signature": r.signature, "redacted": r.redacted}
            for r in output.reasoning
        ]
        parts[self._step_index :] = kept[:1] + blocks + kept[1:]
        for part in parts[self._step_index :]:
            if part["type"] == "tool":
                part["state"] = "running"
        parts.append(
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

    def interrupt_tools(self, output: str) -> None:
        """Settle calls that never finished (the run was aborted or failed) as errors, so the
        stored message shows no tool still running."""
        for part in self.parts:
            if part["type"] == "tool" and part["state"] in ("pending", "running"):
                part["state"] = "error"
                part["output"] = output

    def usage_dict(self) -> dict[str, int]:
        return asdict(self.usage)

    def _append(self, kind: str, delta: str) -> None:
        if self._pieces and self._parts[-1]["type"] == kind:
            self._pieces.append(delta)
        else:
            self._add({"type": kind, "text": delta})
            self._pieces = [delta]

    def _add(self, part: dict[str, Any]) -> None:
        """Append a part after settling the streaming one (it is no longer last)."""
        self._parts = self.parts
        self._parts.append(part)
        self._pieces = []


def parse_arguments(arguments: str) -> Any:
    """Arguments as JSON when they parse (what clients want), else the raw text the model sent."""
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
