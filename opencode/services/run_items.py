"""A run's ``ResponseItem``s into its log, for the Codex stream's ``rawResponseItem/completed``.

The items come from the one mapping (``events/codex_items.py``), computed here where the draft's
parts are known, and go into the run's log as internal ``items_completed`` events: the user
message when the turn starts (``TurnBuilder``), a compaction's summary when it is stored
(``RunContext``), each step's reasoning, text and calls when the step finishes, the calls'
outputs as they finish, in call order (an output waits for those of the earlier calls of its
step), and, when a turn is aborted or fails, whatever of it is not in the log yet. A fault in
the mapping is logged and costs the Codex stream raw items, never the turn.
"""

import logging
from collections.abc import Callable
from typing import Any

from opencode.events import codex_items
from opencode.events.codex_items import Item
from opencode.schemas.events import ItemsCompleted, StreamEvent

log = logging.getLogger(__name__)

Part = dict[str, Any]
Emit = Callable[[StreamEvent], None]


def log_items(emit: Emit, turn_id: str, make: Callable[[], list[Item]]) -> None:
    """Log the items ``make`` maps (nothing when there are none, or when the mapping fails)."""
    try:
        items = make()
    except Exception:
        log.exception("could not map the items of turn %s for the Codex stream", turn_id)
        return
    if items:
        emit(ItemsCompleted(turn_id=turn_id, items=items))


class TurnItems:
    """What of one run's assistant message is in the log as items."""

    def __init__(self, emit: Emit, *, message_id: str, turn_id: str) -> None:
        self._emit = emit
        self._message_id = message_id
        self._turn_id = turn_id
        self._logged_step: int | None = None  # step-start index of the last step logged
        self._waiting: list[str] = []  # calls whose outputs are not logged, in call order
        self._finished: dict[str, Part] = {}  # finished calls among them, by call id

    def step_finished(self, parts: list[Part]) -> None:
        """The last step of ``parts`` (the draft's) is final: its reasoning, text and calls;
        without calls it ends the turn, so its text is the final answer."""
        start = _last_step_start(parts)
        if start is None:
            return
        final = not self._claim(parts, start)
        log_items(self._emit, self._turn_id, lambda: self._step(parts, start, final=final))

    def tool_finished(self, parts: list[Part], call_id: str) -> None:
        """``call_id`` has its result: log it, with the outputs that waited for it."""
        part = _tool_part(parts, call_id)
        if part is None or call_id not in self._waiting:
            return
        self._finished[call_id] = part
        ready: list[Part] = []
        while self._waiting and self._waiting[0] in self._finished:
            ready.append(self._finished.pop(self._waiting.pop(0)))
        log_items(self._emit, self._turn_id, lambda: [codex_items.output_item(p) for p in ready])

    def ending(self, parts: list[Part]) -> None:
        """The turn ends: log what is not logged yet, before its final event: an unfinished
        step's reasoning, text (commentary) and calls, and every missing output (a call that
        never finished has its final part, settled as interrupted, by now)."""
        start = _last_step_start(parts)
        unfinished = start is not None and start != self._logged_step
        if unfinished:
            self._claim(parts, start)
        outputs = [self._finished.get(call) or _tool_part(parts, call) for call in self._waiting]
        self._waiting, self._finished = [], {}

        def make() -> list[Item]:
            step = self._step(parts, start, final=False) if unfinished else []
            return step + [codex_items.output_item(p) for p in outputs if p is not None]

        log_items(self._emit, self._turn_id, make)

    def _claim(self, parts: list[Part], start: int) -> list[str]:
        """The step at ``start`` is logged now: its calls wait for their outputs."""
        self._logged_step = start
        calls = [p["call_id"] for p in parts[start:] if p["type"] == "tool"]
        self._waiting.extend(calls)
        return calls

    def _step(self, parts: list[Part], start: int, *, final: bool) -> list[Item]:
        return codex_items.step_items(self._message_id, parts, start=start, final=final)


def _last_step_start(parts: list[Part]) -> int | None:
    for index in range(len(parts) - 1, -1, -1):
        if parts[index]["type"] == "step-start":
            return index
    return None


def _tool_part(parts: list[Part], call_id: str) -> Part | None:
    for part in reversed(parts):
        if part["type"] == "tool" and part["call_id"] == call_id:
            return part
    return None
