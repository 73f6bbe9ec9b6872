"""The one ``ModelClient`` that talks to providers, through ``litellm.acompletion``.

Translation both ways lives here; every provider quirk is a named helper. LiteLLM's own
retries are disabled (``num_retries=0``, and ``max_retries=0`` for the OpenAI SDK it wraps):
retrying is ``RetryingClient``'s job, and only it knows whether output already reached the user.

The stream is accumulated here, delta by delta; ``litellm.stream_chunk_builder`` re-walks every
chunk and is deliberately not used.

Cost: ``litellm.cost_per_token(model=..., usage_object=<the usage chunk>)`` prices the step from
LiteLLM's offline cost map (``LITELLM_LOCAL_MODEL_COST_MAP``, set by ``opencode.core.env``):
prompt tokens at the input price (cached ones at the cache-read price, cache writes at the
cache-write price) plus completion tokens, reasoning included, at the output price (or the
reasoning price where the map has one). A model missing from the map costs 0.0.
"""

import asyncio
import email.utils
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

import opencode.core.env  # noqa: F401  (LiteLLM's offline settings, before LiteLLM loads)

# isort: split
import litellm

from opencode.llm.types import (
    ChatMessage,
    ModelRequest,
    ProviderError,
    Reasoning,
    ReasoningDelta,
    StepOutput,
    StreamChunk,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)

litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner printed per error

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


class LiteLLMClient:
    """``ModelClient`` over ``litellm.acompletion(stream=True)``.

    Consume with ``contextlib.aclosing`` (or cancel the consuming task while it awaits the next
    chunk): either way the ``finally`` below closes the provider's HTTP stream at once.
    """

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        provider = request.model.split("/", 1)[0]
        try:
            response = await litellm.acompletion(**completion_kwargs(request))
        except Exception as exc:
            raise to_provider_error(exc, provider) from exc
        try:
            step = _StepBuilder()
            while (chunk := await _next_chunk(response, provider)) is not None:
                for delta in step.add(chunk):
                    yield delta
            yield step.output(request.model)
        finally:
            await _close_stream(response)


def completion_kwargs(request: ModelRequest) -> dict[str, Any]:
    """Arguments for ``litellm.acompletion``; ``request.extra`` cannot switch off streaming,
    usage reporting or the no-hidden-retries rule."""
    kwargs: dict[str, Any] = {"model": request.model, "messages": to_litellm_messages(request)}
    if request.tools:
        kwargs["tools"] = [_tool(spec) for spec in request.tools]
        kwargs.update(skip_mcp_gateway())
    if request.api_key:
        kwargs["api_key"] = request.api_key
    if request.api_base:
        kwargs["api_base"] = request.api_base
    if request.max_tokens:
        kwargs["max_tokens"] = request.max_tokens
    kwargs.update(request.extra)
    # Without include_usage OpenAI sends no usage chunk, so tokens and cost would read 0.
    kwargs.update(stream=True, stream_options={"include_usage": True})
    kwargs.update(num_retries=0, max_retries=0)
    return kwargs


# ---- requests: ChatMessage -> OpenAI-format dicts ----


def to_litellm_messages(request: ModelRequest) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    for message in request.messages:
        messages.append(_message(message, request.model))
    return messages


def _message(message: ChatMessage, model: str) -> dict[str, Any]:
    if message.role == "tool":
        content = f"Error: {message.text}" if message.is_error else message.text
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.role != "assistant":
        return {"role": message.role, "content": message.text}
    out: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if model.startswith("anthropic/"):
        out.update(anthropic_thinking_replay(message.reasoning))
    else:
        out.update(drop_reasoning_replay(message.reasoning))
    return out


def anthropic_thinking_replay(reasoning: tuple[Reasoning, ...]) -> dict[str, Any]:
    """Anthropic: with extended thinking and tool use, an assistant turn must be replayed with
    its thinking blocks, signatures intact, or the API rejects the next request (and LiteLLM
    silently drops ``thinking`` when the last tool-calling turn has none). LiteLLM turns
    ``thinking_blocks`` into those content blocks. A block without a signature (from another
    provider earlier in the session) would fail Anthropic's verification, so it is left out."""
    blocks: list[dict[str, str]] = []
    for block in reasoning:
        if block.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": block.redacted})
        elif block.signature:
            thinking = {"type": "thinking", "thinking": block.text, "signature": block.signature}
            blocks.append(thinking)
    return {"thinking_blocks": blocks} if blocks else {}


def drop_reasoning_replay(reasoning: tuple[Reasoning, ...]) -> dict[str, Any]:
    """OpenAI and Gemini (every provider but Anthropic): reasoning is not sent back. OpenAI chat
    completions has no input field for it, and Gemini's thought signatures, which it does need
    back on function calls, travel inside the tool-call id (LiteLLM encodes them as
    ``<id>__thought__<signature>`` and decodes them on replay)."""
    return {}


def skip_mcp_gateway() -> dict[str, Any]:
    """All providers (LiteLLM 1.106): a call with ``tools=`` first imports LiteLLM's MCP-gateway
    handler, which needs the optional ``mcp`` package and otherwise fails the call with "No
    module named 'mcp'". Our tools are plain function tools, never MCP servers, so the gateway
    check is switched off with LiteLLM's own internal flag (it is not sent to the provider)."""
    return {"_skip_mcp_handler": True}


def _tool(spec: ToolSpec) -> dict[str, Any]:
    function = {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
    return {"type": "function", "function": function}


# ---- responses: LiteLLM stream chunks -> StreamChunk ----


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _StepBuilder:
    text: list[str] = field(default_factory=list)
    reasoning: list[Reasoning] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)  # the reasoning block being streamed
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Any = None  # litellm.Usage from the usage chunk

    def add(self, chunk: Any) -> Iterator[TextDelta | ReasoningDelta]:
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        for choice in chunk.choices or ():
            self.finish_reason = choice.finish_reason or self.finish_reason
            delta = choice.delta
            if reasoning := getattr(delta, "reasoning_content", None):
                self.thinking.append(reasoning)
                yield ReasoningDelta(reasoning)
            self._add_thinking_blocks(getattr(delta, "thinking_blocks", None) or ())
            if delta.content:
                self.text.append(delta.content)
                yield TextDelta(delta.content)
            for call in delta.tool_calls or ():
                self._add_tool_call(call)

    def _add_thinking_blocks(self, blocks: Any) -> None:
        """Thinking text is counted from ``reasoning_content`` only (Anthropic repeats it in
        ``thinking_blocks``); blocks contribute signatures, which end a block, and redacted data."""
        for block in blocks:
            if block.get("type") == "redacted_thinking":
                self.reasoning.append(Reasoning(text="", redacted=block.get("data", "")))
            elif block.get("signature"):
                self.reasoning.append(Reasoning("".join(self.thinking), block["signature"]))
                self.thinking.clear()

    def _add_tool_call(self, call: Any) -> None:
        index = call.index if call.index is not None else len(self.calls)
        partial = self.calls.setdefault(index, _PartialCall())
        partial.id = call.id or partial.id
        if call.function is not None:
            partial.name = call.function.name or partial.name
            if call.function.arguments:
                partial.arguments.append(call.function.arguments)

    def output(self, model: str) -> StepOutput:
        reasoning = list(self.reasoning)
        if self.thinking:  # unsigned reasoning (OpenAI-compatible, Gemini)
            reasoning.append(Reasoning("".join(self.thinking)))
        calls = tuple(
            ToolCall(p.id or f"call_{uuid.uuid4().hex[:24]}", p.name, "".join(p.arguments))
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


# ---- the provider stream's lifetime ----


async def _next_chunk(response: Any, provider: str) -> Any:
    try:
        return await response.__anext__()
    except StopAsyncIteration:
        return None
    except Exception as exc:
        raise to_provider_error(exc, provider) from exc


async def _close_stream(response: Any) -> None:
    """Close the provider stream now, not at garbage collection. Runs in ``finally``, also
    after a cancellation (it is delivered once, so these awaits proceed; closing does not wait
    on the network, and a second cancel during it still leaves the connection closed)."""
    leftover = anthropic_http_response(getattr(response, "completion_stream", None))
    try:
        await response.aclose()
        if leftover is not None:
            await leftover.aclose()
    finally:
        # The transport closes its socket in a call_soon callback: let it run, so that the
        # provider sees the disconnect by the time our generator is closed.
        await asyncio.sleep(0)


def anthropic_http_response(completion_stream: Any) -> httpx.Response | None:
    """Anthropic (LiteLLM 1.106): the stream iterator keeps only ``response.aiter_lines()``,
    so ``CustomStreamWrapper.aclose()`` has nothing to close and the HTTP connection stays open
    until garbage collection. The response is still reachable as that generator's ``self``.
    Other providers' iterators close their response themselves; for them this returns None."""
    lines = getattr(completion_stream, "streaming_response", None)
    frame = getattr(lines, "ag_frame", None)
    owner = frame.f_locals.get("self") if frame is not None else None
    return owner if isinstance(owner, httpx.Response) else None


# ---- errors ----

_TRANSPORT_ERRORS = (
    litellm.APIConnectionError,
    litellm.Timeout,
    httpx.TransportError,  # LiteLLM's aiohttp transport re-raises aiohttp errors as these
    ConnectionError,
    TimeoutError,
)
_TIMEOUTS = (litellm.Timeout, httpx.TimeoutException, TimeoutError)
_RETRYABLE_STATUS = {408, 409, 429}


def to_provider_error(exc: BaseException, provider: str) -> ProviderError:
    """A short, human-readable ProviderError for any LiteLLM / transport failure: retryable
    for 408, 409, 429, 5xx, connection failures and timeouts."""
    cause = _unwrap(exc)
    status = getattr(cause, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = _provider_message(cause)
    if status is None or status >= 500:  # LiteLLM labels some connection failures 500
        transport = [e for e in _chain(exc) if isinstance(e, _TRANSPORT_ERRORS)]
        if transport:
            what = "timed out" if any(isinstance(e, _TIMEOUTS) for e in transport) else "failed"
            return ProviderError(f"{provider}: connection {what}: {detail}", retryable=True)
    retryable = status is not None and (status in _RETRYABLE_STATUS or status >= 500)
    label = f"{provider} error {status}" if status else f"{provider} error"
    return ProviderError(
        f"{label}: {detail}", status_code=status, retryable=retryable, retry_after=_retry_after(exc)
    )


def _unwrap(exc: BaseException) -> BaseException:
    """LiteLLM wraps failures while streaming (also a Gemini error status, which only shows up
    at the first chunk) in ``MidStreamFallbackError`` (always 'status 503'); the real one is
    ``original_exception``."""
    while isinstance(original := getattr(exc, "original_exception", None), BaseException):
        exc = original
    return exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "original_exception", None), current.__cause__]
        pending.append(current.__context__)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), wherever
    in LiteLLM's exception chain the response headers survived."""
    for current in _chain(exc):
        response = getattr(current, "response", None)
        for headers in (
            getattr(current, "litellm_response_headers", None),
            getattr(current, "headers", None),
            getattr(response, "headers", None),
        ):
            if headers and (delay := parse_retry_after(headers)) is not None:
                return delay
    return None


def parse_retry_after(headers: Any) -> float | None:
    headers = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            return max(0.0, float(headers["retry-after"]))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(headers["retry-after"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+: |\w+Error: )+")
_PROVIDER_PREFIX = re.compile(r"^\w*Exception(?: \w+Error)? - ")
_HANDLE_WITH = re.compile(r"\s*Handle with `[^`]*`\.?$")


def _provider_message(exc: BaseException) -> str:
    """The provider's own words: the ``message`` of its JSON error body when there is one,
    without LiteLLM's ``litellm.RateLimitError: ...Exception - `` prefixes."""
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    text = _HANDLE_WITH.sub("", _PROVIDER_PREFIX.sub("", _LITELLM_PREFIX.sub("", text)))
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            body = json.loads(text[start : end + 1])
        except ValueError:
            body = None
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else error
        if isinstance(detail, str) and detail:
            text = detail
    return text if len(text) <= 300 else text[:297] + "..."
