"""Anthropic Messages streamed with httpx and parsed here, without LiteLLM.

Used for ``anthropic/<model>``. Through LiteLLM each streamed event costs the server about half a
millisecond of CPU (its iterator builds a ``ModelResponseStream`` of pydantic objects per event,
its stream wrapper re-walks each one and rebuilds usage; see bench/README.md); here an event is
one ``json.loads`` and a few dict lookups. Everything else is shared with the LiteLLM path:
failures (``errors``), and accumulation and cost (``accumulate``, priced from LiteLLM's offline
cost map). The request body: ``anthropic_request``; bodies other than a good event stream:
``anthropic_bodies``.

The event stream is read as Anthropic writes it: ``event:`` and ``data:`` lines, each ``data:``
one event of JSON whose ``type`` names it (the ``event:`` line only when it does not).
``message_start`` and ``message_delta`` carry usage, which adds up as LiteLLM adds it (prompt
tokens count the cache reads and writes too); ``message_delta`` carries the stop reason, mapped
as LiteLLM maps it; ``ping`` and event types this client does not know are skipped; an ``error``
event fails the step as the HTTP status its error type comes with. What a server or a gateway
may send instead fails the step with a ``ProviderError`` that says so: a line over
``MAX_LINE_BYTES``, a line that is not JSON, a 200 that is not an event stream, a stream that
ends without a ``message_delta`` (one without ``message_stop`` after it is complete).
"""

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

from opencode.llm import cost_map
from opencode.llm.accumulate import Delta, StepBuilder
from opencode.llm.anthropic_bodies import (
    PROVIDER,
    error_event,
    whole_body,
)
from opencode.llm.anthropic_request import messages_url, request_body, request_headers
from opencode.llm.errors import invalid_json_error
from opencode.llm.http_stream import HTTPStream, PooledClient
from opencode.llm.openai_bodies import HTTPFailure
from opencode.llm.sse import EventLines, data_payload
from opencode.llm.types import ModelRequest, ProviderError, StreamChunk, Usage

TOKEN_PIECE = 1024  # characters: LiteLLM's TIKTOKEN_ENCODE_CHUNK_SIZE_CHARS
MAX_LINE_BYTES = 2**20  # one event: Anthropic's are a few KiB at most (tool input comes in pieces)
# Anthropic's stop reasons as LiteLLM maps them; any other is "stop".
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
    "compaction": "length",
}


class AnthropicStreamClient(PooledClient):
    """``ModelClient`` for ``anthropic/<model>`` requests; the pooled HTTP client, the idle timeout
    and closing are ``http_stream.PooledClient``'s."""

    provider = PROVIDER
    error_body = staticmethod(HTTPFailure.of)
    whole_body = staticmethod(whole_body)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        body = request_body(request)  # before the exchange: a body it cannot build is a 400
        exchange = await self.post(
            messages_url(request.api_base), body, request_headers(request.api_key)
        )
        try:
            step = AnthropicStep(request.max_output_chars)
            async for event in _events(exchange):
                for delta in step.add_event(event):
                    yield delta
            for chunk in await step.finish(request.model):
                yield chunk
        finally:
            await exchange.close()


async def _events(exchange: HTTPStream) -> AsyncIterator[dict[str, Any]]:
    """The events of the stream, from the body's reads."""
    lines = EventLines(PROVIDER, MAX_LINE_BYTES)
    name = ""  # of the last ``event:`` line, for a ``data:`` whose JSON has no ``type``
    async for read in exchange.reads():
        for line in lines.feed(read):
            if (payload := data_payload(line)) is not None:
                yield parse_event(payload, name)
            elif line.startswith(b"event:"):
                name = line[6:].strip().decode(errors="replace")
    if (payload := data_payload(lines.end())) is not None:
        yield parse_event(payload, name)


def parse_event(payload: bytes, name: str = "") -> dict[str, Any]:
    # Decoded first, bytes that are not UTF-8 as U+FFFD (see openai_native.parse_chunk).
    text = payload.decode(errors="replace")
    try:
        event = json.loads(text)
    except ValueError:
        raise invalid_json_error(PROVIDER, text) from None
    if not isinstance(event, dict):
        message = f"{PROVIDER}: the stream sent an event that is not a JSON object: {text[:200]}"
        raise ProviderError(message, retryable=True)
    if "type" not in event and name:
        event["type"] = name
    return event


class AnthropicStep:
    """One step's events fed to a ``StepBuilder``: which content block is open, the tool calls
    so far, and the usage counts as they add up."""

    __slots__ = ("_block", "_call", "_call_input", "_counts", "_thinking", "_thought", "step")

    def __init__(self, max_output_chars: int | None = None) -> None:
        self.step = StepBuilder(PROVIDER, max_output_chars)
        self._block: str | None = None  # the type of the open content block
        self._call = -1  # index of the last tool_use block's call
        self._call_input: bool | None = None  # its input so far: none, only "", some JSON
        self._counts: dict[str, Any] = {}  # Anthropic's usage, message_start then message_delta
        self._thinking: list[str] = []  # the thinking text, as streamed
        self._thought = 0  # how much of it there was at the last usage

    def add_event(self, event: dict[str, Any]) -> Iterator[Delta]:
        """Feed one event to the step; yields the deltas it carried."""
        step = self.step
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            what = delta.get("type")
            if what == "text_delta":
                if isinstance(text := delta.get("text"), str) and text:
                    yield from step.add_text(text)
            elif what == "input_json_delta":
                piece = delta.get("partial_json")
                if self._block == "tool_use" and isinstance(piece, str):
                    self._call_input = self._call_input or bool(piece)
                    step.add_tool_call(self._call, None, None, piece)
            elif what == "thinking_delta":
                if isinstance(text := delta.get("thinking"), str) and text:
                    self._thinking.append(text)
                    yield from step.add_reasoning(text)
            elif what == "signature_delta" and (signature := delta.get("signature")):
                yield from step.add_thinking_blocks(({"type": "thinking", "signature": signature},))
        elif kind == "content_block_start":
            yield from self._start_block(event.get("content_block") or {})
        elif kind == "content_block_stop":
            if self._block == "tool_use" and self._call_input is False:
                step.add_tool_call(self._call, None, None, "{}")  # as LiteLLM: empty input is {}
            self._block = None
        elif kind == "message_start":
            self._add_usage((event.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason") or "stop"
            step.finish_reason = STOP_REASONS.get(reason, "stop")
            self._add_usage(event.get("usage"))
        elif kind == "error":
            raise error_event(event.get("error"))

    async def finish(self, model: str) -> Iterator[StreamChunk]:
        """The end of the stream (see ``StepBuilder.finish``), with the usage read. Counting the
        thinking text's tokens, when Anthropic did not, runs in a thread: the first count
        loads the tokenizer (~0.3 s)."""
        if self._counts and self.step.finish_reason is not None:
            thinking = "".join(self._thinking[: self._thought])
            estimate = 0
            if thinking and reported_thinking_tokens(self._counts) is None:
                estimate = await asyncio.to_thread(estimated_tokens, thinking)
            self.step.usage = anthropic_usage(self._counts, estimate)
        return self.step.finish(model)

    def _start_block(self, block: dict[str, Any]) -> Iterator[Delta]:
        kind = self._block = block.get("type")
        if kind == "text":
            if isinstance(text := block.get("text"), str) and text:
                yield from self.step.add_text(text)
        elif kind == "tool_use":
            self._call += 1
            self._call_input = None
            self.step.add_tool_call(self._call, block.get("id"), block.get("name"), None)
        elif kind == "redacted_thinking":
            redacted = {"type": "redacted_thinking", "data": block.get("data", "")}
            yield from self.step.add_thinking_blocks((redacted,))

    def _add_usage(self, usage: Any) -> None:
        """Anthropic's usage is cumulative, and message_delta may leave out what
        message_start said (the input and cache counts)."""
        if isinstance(usage, dict):
            self._counts = {**self._counts, **usage}
            self._thought = len(self._thinking)


def anthropic_usage(counts: dict[str, Any], estimate: int = 0) -> Usage:
    """Anthropic's counts as LiteLLM reports them: prompt tokens are the uncached input plus the
    cache reads and writes; reasoning tokens are Anthropic's ``thinking_tokens`` where it says
    them, else ``estimate`` (LiteLLM's: ``estimated_tokens`` of the thinking text); either at
    most the output tokens."""
    cache_write = _count(counts.get("cache_creation_input_tokens"))
    cache_read = _count(counts.get("cache_read_input_tokens"))
    output = _count(counts.get("output_tokens"))
    reported = reported_thinking_tokens(counts)
    return Usage(
        input_tokens=_count(counts.get("input_tokens")) + cache_read + cache_write,
        output_tokens=output,
        reasoning_tokens=min(max(0, estimate if reported is None else reported), output),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def reported_thinking_tokens(counts: dict[str, Any]) -> int | None:
    details = counts.get("output_tokens_details")
    reported = details.get("thinking_tokens") if isinstance(details, dict) else None
    return reported if isinstance(reported, int) else None


def estimated_tokens(text: str) -> int:
    """LiteLLM's estimate of a text's tokens (``token_counter(text=...)``, 1.106): tiktoken's
    ``cl100k_base`` over pieces of ``TOKEN_PIECE`` characters, from the copy LiteLLM bundles,
    without importing LiteLLM. (LiteLLM extrapolates from samples past 4 M characters; this
    counts them all.) 0 when the tokenizer cannot be loaded."""
    encoding = _cl100k()
    if encoding is None:
        return 0
    pieces = range(0, len(text), TOKEN_PIECE)
    return sum(
        len(encoding.encode(text[i : i + TOKEN_PIECE], disallowed_special=())) for i in pieces
    )


@cache
def _cl100k() -> Any:
    path = cost_map.map_path()
    try:
        # Where LiteLLM points tiktoken (at its import) for an offline copy of the encoding.
        os.environ.setdefault(
            "TIKTOKEN_CACHE_DIR", str(path.parent / "litellm_core_utils/tokenizers")
        )
        import tiktoken  # here: only a step that thought without a count needs it

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # no litellm, no tiktoken, no bundled copy (and no network)
        return None


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) else 0
