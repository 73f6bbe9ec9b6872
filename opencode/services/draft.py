"""The assistant message as it is being generated: parts built from agent events.

Kept in memory during a run and written to the store at step boundaries (and every second
while text streams), so a reader or a crash sees at most a second of lag. Each write carries
only what changed since the last one (a ``PartsPatch``): the text a streaming part gained, and
the parts added or changed after the last stored one. A long reply therefore costs each write
what it gained, not its whole length.
"""

import json
from dataclasses import asdict, dataclass
from typing import Any

from opencode.llm.types import StepOutput, ToolCall, Usage
from opencode.storage.base import PartsPatch
from opencode.tools.registry import ToolResult

_STREAMED = ("text", "reasoning")  # parts whose text grows delta by delta


@dataclass(frozen=True)
class Pending:
    """A write in flight: its patch, and what the store holds once it has been applied."""

    patch: PartsPatch
    parts: int  # parts stored
    last_chars: int  # characters of the last stored part's text
    open_pieces: int | None  # pieces of the streaming part stored, if the last part streams
    dirty_marks: int
    content_pieces: int


class Draft:
    def __init__(self) -> None:
        self._parts: list[dict[str, Any]] = []
        # The last part's text while it streams, as its deltas: appending to a string held in a
        # dict copies it whole, which made a long reply quadratic. Joined when the part settles.
        self._open: list[str] | None = None
        self._open_chars = 0
        self._stored = 0  # parts the store holds
        self._stored_chars = 0  # characters of part ``_stored - 1``'s text the store holds
        self._open_stored = 0  # pieces of the streaming part the store holds (if it is stored)
        self._dirty: list[int] = []  # stored parts changed since the last write
        self._content: list[str] = []  # reply text gained since the last write
        self.usage = Usage()
        self.cost = 0.0
        self._step_index = 0  # index of the current step-start part

    @property
    def parts(self) -> list[dict[str, Any]]:
        """Every part as it is now (a copy)."""
        return [self._part(index) for index in range(len(self._parts))]

    # ---- agent events ----

    def step_start(self, step_number: int) -> None:
        self._add({"type": "step-start", "step_number": step_number})
        self._step_index = len(self._parts) - 1

    def text(self, delta: str) -> None:
        self._append("text", delta)
        self._content.append(delta)

    def reasoning(self, delta: str) -> None:
        self._append("reasoning", delta)

    def tool_called(self, call: ToolCall) -> dict[str, Any]:
        """Add the call's part (arguments parsed) and return it."""
        part = {
            "type": "tool",
            "call_id": call.id,
            "name": call.name,
            "arguments": parse_arguments(call.arguments),
            "arguments_json": call.arguments,
            "state": "pending",
            "output": None,
        }
        self._add(part)
        return part

    def step_finish(self, step_number: int, output: StepOutput) -> None:
        """Record usage; replace streamed reasoning with the final blocks (they carry the
        signatures Anthropic needs replayed); mark this step's tool calls running."""
        self.usage, self.cost = self.usage + output.usage, self.cost + output.cost
        self._settle()
        step = self._parts[self._step_index :]
        kept = [p for p in step if p["type"] != "reasoning"]
        blocks = [
            {"type": "reasoning", "text": r.text, "signature": r.signature, "redacted": r.redacted}
            for r in output.reasoning
        ]
        self._parts[self._step_index :] = kept[:1] + blocks + kept[1:]
        self._mark(self._step_index)
        for part in self._parts[self._step_index :]:
            if part["type"] == "tool":
                part["state"] = "running"
        self._parts.append(
            {
                "type": "step-finish",
                "step_number": step_number,
                "stop_reason": output.finish_reason,
                "cost": output.cost,
                "usage": asdict(output.usage),
            }
        )

    def tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        for index in range(len(self._parts) - 1, -1, -1):
            part = self._parts[index]
            if part["type"] == "tool" and part["call_id"] == call.id:
                part["state"] = "error" if result.is_error else "completed"
                part["output"] = result.text
                self._mark(index)
                return

    def interrupt_tools(self, output: str) -> None:
        """Settle calls that never finished (the run was aborted or failed) as errors, so the
        stored message shows no tool still running."""
        for index, part in enumerate(self._parts):
            if part["type"] == "tool" and part["state"] in ("pending", "running"):
                part["state"] = "error"
                part["output"] = output
                self._mark(index)

    def usage_dict(self) -> dict[str, int]:
        return asdict(self.usage)

    # ---- writes ----

    def pending(self) -> Pending:
        """What the next write must carry to bring the store up to date."""
        keep = min([self._stored, *self._dirty])
        append = ""
        if keep and keep == self._stored:
            append = self._unstored_text(keep - 1)
        tail = tuple(self._part(index) for index in range(keep, len(self._parts)))
        last = len(self._parts) - 1
        return Pending(
            patch=PartsPatch(
                keep=keep,
                drop=self._stored - keep,
                append_text=append,
                tail=tail,
                content_append="".join(self._content),
            ),
            parts=len(self._parts),
            last_chars=self._text_chars(last) if last >= 0 else 0,
            open_pieces=len(self._open) if self._open is not None else None,
            dirty_marks=len(self._dirty),
            content_pieces=len(self._content),
        )

    def written(self, write: Pending) -> None:
        """``write`` is in the store: later writes start from there (the draft may have changed
        since ``pending()`` made it; those changes stay pending)."""
        self._stored = write.parts
        self._stored_chars = write.last_chars
        still_open = self._open is not None and len(self._parts) == write.parts
        self._open_stored = (write.open_pieces or 0) if still_open else 0
        del self._dirty[: write.dirty_marks]
        del self._content[: write.content_pieces]

    # ---- plumbing ----

    def _append(self, kind: str, delta: str) -> None:
        if not delta:
            return
        if self._open is not None and self._parts[-1]["type"] == kind:
            self._open.append(delta)
            self._open_chars += len(delta)
        else:
            self._add({"type": kind, "text": ""})
            self._open, self._open_chars = [delta], len(delta)

    def _add(self, part: dict[str, Any]) -> None:
        """Append a part after settling the streaming one (it is no longer last)."""
        self._settle()
        self._parts.append(part)

    def _settle(self) -> None:
        """Join the streaming part's deltas into its text; it streams no more."""
        if self._open is None:
            return
        index = len(self._parts) - 1
        if index == self._stored - 1:  # partly stored: keep count of what the store has
            self._stored_chars = sum(len(piece) for piece in self._open[: self._open_stored])
        self._parts[index]["text"] = "".join(self._open)
        self._open, self._open_chars, self._open_stored = None, 0, 0

    def _part(self, index: int) -> dict[str, Any]:
        part = dict(self._parts[index])
        if self._open is not None and index == len(self._parts) - 1:
            part["text"] = "".join(self._open)
        return part

    def _text_chars(self, index: int) -> int:
        if self._open is not None and index == len(self._parts) - 1:
            return self._open_chars
        text = self._parts[index].get("text")
        return len(text) if isinstance(text, str) else 0

    def _unstored_text(self, index: int) -> str:
        """Text part ``index`` (the last stored one) gained since it was written."""
        if self._parts[index]["type"] not in _STREAMED:
            return ""
        if self._open is not None and index == len(self._parts) - 1:
            return "".join(self._open[self._open_stored :])
        return self._parts[index]["text"][self._stored_chars :]

    def _mark(self, index: int) -> None:
        # Recorded even past what is stored: a write in flight may be storing that part.
        self._dirty.append(index)


def parse_arguments(arguments: str) -> Any:
    """Arguments as JSON when they parse (what clients want), else the raw text the model sent."""
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
