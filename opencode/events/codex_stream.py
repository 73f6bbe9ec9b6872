"""The message stream as Codex app-server v2 notifications (``?format=codex``, or NDJSON).

A ``CodexStream`` (one per stream) turns a run's log into JSON-RPC notifications ``{"method",
"params"}``, without the ``jsonrpc`` member, as Codex sends them: ``turn/started``; the user
prompt's raw item, then its ``userMessage`` item; ``item/started`` with the first delta of an
``agentMessage`` or ``reasoning``, ``item/agentMessage/delta`` or ``item/reasoning/textDelta``;
when the step ends, each item's ``item/completed`` followed by its ``rawResponseItem/completed``;
a call's raw ``function_call`` then its ``dynamicToolCall`` lifecycle, then the raw output;
``thread/tokenUsage/updated`` per step; ``error`` (``willRetry`` on a retry) and finally
``turn/completed`` (``completed``, ``interrupted`` or ``failed``). ``threadId`` is the session,
``turnId`` the user message that started the turn. The raw items come from the log's internal
``items_completed`` events, so they are the items ``events/codex_items.py`` maps.

The encoder keeps what Codex clients must be told again (the open items and their text, the
calls' arguments, the turn's token total), so a stream resumed after a ``Last-Event-ID`` runs
the log from its start through a new encoder and drops what the client has seen.
"""

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from opencode.events.codex_items import Item, notification
from opencode.events.codex_threads import (
    content_items,
    item_text,
    parsed_arguments,
    text_item,
    token_breakdown,
    tool_item,
    turn_error,
    user_input,
)
from opencode.schemas.common import UsageOut
from opencode.schemas.events import (
    CompactionEvent,
    Done,
    ErrorEvent,
    ItemsCompleted,
    MessageStart,
    ReasoningEvent,
    RetryEvent,
    StepFinish,
    StepStart,
    TextEvent,
    ToolCallEvent,
    ToolResultEvent,
)

Notification = dict[str, Any]
INTERRUPTED_STOPS = ("aborted", "shutdown")
RAW = "rawResponseItem/completed"


@dataclass
class _Streamed:
    """An ``agentMessage`` or ``reasoning`` item whose text arrives delta by delta."""

    kind: Literal["agentMessage", "reasoning"]
    id: str
    pieces: list[str] = field(default_factory=list)

    def thread_item(self, phase: str | None = None) -> dict[str, Any]:
        text = "".join(self.pieces)
        if self.kind == "agentMessage":
            return {"type": "agentMessage", "id": self.id, "text": text, "phase": phase}
        return {
            "type": "reasoning",
            "id": self.id,
            "summary": [],
            "content": [text] if text else [],
        }


class CodexStream:
    def __init__(self, *, opt_out: frozenset[str] = frozenset()) -> None:
        self._opt_out = opt_out  # methods the client does not want (exact match, as Codex's)
        self._thread = self._turn = self._message = ""
        self._items = 0  # item ids handed out
        self._current: _Streamed | None = None  # the item receiving deltas
        self._streamed: list[_Streamed] = []  # open streamed items of the step, in order
        self._calls: dict[str, dict[str, Any]] = {}  # calls seen: tool name and arguments
        self._running: set[str] = set()  # calls whose dynamicToolCall item is open
        self._compaction: str | None = None
        self._total = UsageOut()
        self._out: list[Notification] = []
        self._at_ms = 0

    def encode(self, event: BaseModel, *, at_ms: int | None = None) -> list[Notification]:
        """The notifications one event of the log stands for (often none). ``at_ms`` is when
        the event happened (its log id is a clock: a replay stamps items as they went out)."""
        self._out = []
        self._at_ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
        if isinstance(event, TextEvent):
            self._delta("agentMessage", event.text)
        elif isinstance(event, ReasoningEvent):
            self._delta("reasoning", event.text)
        elif isinstance(event, ItemsCompleted):
            self._completed(event.items)
        elif isinstance(event, MessageStart):
            self._thread, self._message = event.session_id, event.message_id
            self._turn = event.parent_id or event.message_id
            self._send("turn/started", {"threadId": self._thread, "turn": self._turn_out()})
        elif isinstance(event, StepStart):
            self._current = None
        elif isinstance(event, ToolCallEvent):
            call = event.tool_call
            self._calls[call.id] = {"tool": call.name, "arguments": call.arguments}
        elif isinstance(event, ToolResultEvent):
            self._tool_done(event.tool_call_id, [text_item(event.text)], not event.is_error)
        elif isinstance(event, StepFinish):
            self._usage(event.usage)
        elif isinstance(event, CompactionEvent):
            self._compacting(event.status)
        elif isinstance(event, RetryEvent):
            self._error(event.message, will_retry=True)
        elif isinstance(event, Done):
            self._end("interrupted" if event.stop_reason in INTERRUPTED_STOPS else "completed")
        elif isinstance(event, ErrorEvent):
            self._error(event.error, will_retry=False)
            self._end("failed", turn_error(event.error))
        return self._out

    # ---- streamed items ----

    def _delta(self, kind: Literal["agentMessage", "reasoning"], text: str) -> None:
        current = self._current
        if current is None or current.kind != kind:
            current = self._current = _Streamed(kind, self._new_id())
            self._streamed.append(current)
            self._item("item/started", current.thread_item())
        current.pieces.append(text)
        delta = {"threadId": self._thread, "turnId": self._turn, "itemId": current.id}
        if kind == "agentMessage":
            self._send("item/agentMessage/delta", {**delta, "delta": text})
        else:
            self._send("item/reasoning/textDelta", {**delta, "delta": text, "contentIndex": 0})

    def _complete(self, kind: Literal["agentMessage", "reasoning"], item: Item) -> None:
        """The streamed item ``item`` finalises (the first open one of its kind), or, if none
        streamed (a redacted thinking block), its whole lifecycle."""
        streamed = next((s for s in self._streamed if s.kind == kind), None)
        if streamed is None:
            streamed = _Streamed(kind, self._new_id(), [item_text(item)])
            self._item("item/started", streamed.thread_item())
        else:
            self._streamed.remove(streamed)
        self._item("item/completed", streamed.thread_item(item.get("phase")))

    def _close_streamed(self) -> None:
        """Items that streamed but that no raw item finalised (should the mapping skip one)."""
        for streamed in self._streamed:
            self._item("item/completed", streamed.thread_item())
        self._streamed, self._current = [], None

    # ---- raw items ----

    def _completed(self, items: list[Item]) -> None:
        for item in items:
            kind, role = item.get("type"), item.get("role")
            if kind == "message" and role == "user":
                self._raw(item)
                user = {"type": "userMessage", "id": self._turn, "content": user_input(item)}
                self._item("item/started", user)
                self._item("item/completed", user)
                continue
            if kind == "message":
                self._complete("agentMessage", item)
            elif kind == "reasoning":
                self._complete("reasoning", item)
            elif kind == "function_call_output":
                output = item.get("output") or {}
                body = output.get("body", "") if isinstance(output, dict) else output
                self._tool_done(item.get("call_id", ""), content_items(body), False)
            self._raw(item)
            if kind == "function_call":
                self._tool_started(item)
        self._close_streamed()

    def _raw(self, item: Item) -> None:
        self._send(RAW, notification(self._thread, self._turn, item))

    # ---- tools ----

    def _tool_started(self, item: Item) -> None:
        call_id = item.get("call_id", "")
        seen = self._calls.get(call_id) or {
            "tool": item.get("name", ""),
            "arguments": parsed_arguments(item.get("arguments", "")),
        }
        self._running.add(call_id)
        self._item("item/started", tool_item(call_id, seen, "inProgress"))

    def _tool_done(self, call_id: str, content: list[dict[str, Any]], success: bool) -> None:
        """A call's item completes (at its result; at its raw output if it never had one)."""
        if call_id not in self._running:
            return
        self._running.discard(call_id)
        status = "completed" if success else "failed"
        done = tool_item(call_id, self._calls.get(call_id, {}), status)
        self._item("item/completed", {**done, "contentItems": content, "success": success})

    # ---- the rest of the turn ----

    def _usage(self, last: UsageOut) -> None:
        self._total = UsageOut(**{name: getattr(self._total, name) + value for name, value in last})
        usage = {"total": token_breakdown(self._total), "last": token_breakdown(last)}
        self._send(
            "thread/tokenUsage/updated",
            {
                "threadId": self._thread,
                "turnId": self._turn,
                "tokenUsage": {**usage, "modelContextWindow": None},
            },
        )

    def _compacting(self, status: str) -> None:
        if status == "started" or self._compaction is None:
            self._compaction = self._new_id()
            self._item("item/started", {"type": "contextCompaction", "id": self._compaction})
        if status != "started":
            self._item("item/completed", {"type": "contextCompaction", "id": self._compaction})
            self._compaction = None

    def _error(self, message: str, *, will_retry: bool) -> None:
        params = {"error": turn_error(message), "willRetry": will_retry}
        self._send("error", {**params, "threadId": self._thread, "turnId": self._turn})

    def _end(self, status: str, error: dict[str, Any] | None = None) -> None:
        self._close_streamed()
        for call_id in sorted(self._running):  # a call the log never settled
            self._tool_done(call_id, [], False)
        turn = self._turn_out(status, error)
        self._send("turn/completed", {"threadId": self._thread, "turn": turn})

    # ---- plumbing ----

    def _turn_out(self, status: str = "inProgress", error: dict | None = None) -> dict:
        return {"id": self._turn, "items": [], "status": status, "error": error}

    def _new_id(self) -> str:
        self._items += 1
        return f"{self._message}_item_{self._items}"

    def _item(self, method: str, item: dict[str, Any]) -> None:
        params = {"item": item, "threadId": self._thread, "turnId": self._turn}
        # Not in the seed's era, required by the app-server schemas of Codex 0.169 (tests/codex).
        stamp = "startedAtMs" if method == "item/started" else "completedAtMs"
        params[stamp] = self._at_ms
        self._send(method, params)

    def _send(self, method: str, params: dict[str, Any]) -> None:
        if method not in self._opt_out:
            self._out.append({"method": method, "params": params})
