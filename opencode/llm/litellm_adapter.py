"""The ``ModelClient`` over ``litellm.acompletion``: Anthropic, Gemini, and OpenAI when the native
path (``openai_native``) is switched off.

Requests are translated in ``messages`` and failures in ``errors``; this module reads the stream
and feeds it, delta by delta, to ``accumulate.StepBuilder`` (``litellm.stream_chunk_builder``
re-walks every chunk and is deliberately not used). Every provider quirk is a named helper.
LiteLLM's own retries are disabled (``num_retries=0``, and ``max_retries=0`` for the OpenAI SDK
it wraps): retrying is ``RetryingClient``'s job, and only it knows whether output already
reached the user.

LiteLLM ends every stream as if the provider had finished it, also one that was cut short, was
empty, was a 200 HTML page, or (Anthropic, Gemini) went on after a line that is not JSON, which
it silently drops with everything after it. ``not_an_event_stream`` and ``stream_end_error``
tell those apart from a finished stream.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import litellm

from opencode.llm.accumulate import Delta, StepBuilder
from opencode.llm.errors import (
    invalid_json_error,
    media_type,
    not_an_event_stream_error,
    unfinished_stream_error,
    within_idle,
)
from opencode.llm.messages import chat_fields
from opencode.llm.types import ModelRequest, ProviderError, StreamChunk

litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner printed per error


class LiteLLMClient:
    """``ModelClient`` over ``litellm.acompletion(stream=True)``.

    Consume with ``contextlib.aclosing`` (or cancel the consuming task while it awaits the next
    chunk): either way the ``finally`` below closes the provider's HTTP stream at once.

    ``idle_timeout`` bounds every wait on the provider (the call, then each chunk); a stream
    that goes quiet for longer is closed and fails with a retryable ``ProviderError``. None
    waits forever. (LiteLLM's own ``timeout`` would do, but its Gemini path ignores it.)
    """

    def __init__(self, *, idle_timeout: float | None = 300.0) -> None:
        self.idle_timeout = idle_timeout

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        provider = request.model.split("/", 1)[0]
        kwargs = completion_kwargs(request)
        idle = self.idle_timeout
        response = await within_idle(litellm.acompletion(**kwargs), idle, provider)
        try:
            gemini_finished = await within_idle(watch_gemini_finish(response), idle, provider)
            if (error := not_an_event_stream(response, provider)) is not None:
                raise error
            step = StepBuilder(provider, request.max_output_chars)
            while (chunk := await within_idle(anext(response, None), idle, provider)) is not None:
                for delta in add_litellm_chunk(step, chunk):
                    yield delta
            if (error := stream_end_error(response, gemini_finished, provider)) is not None:
                raise error
            for chunk in step.finish(request.model):
                yield chunk
        finally:
            await _close_stream(response)


def completion_kwargs(request: ModelRequest) -> dict[str, Any]:
    """Arguments for ``litellm.acompletion``; ``request.extra`` cannot switch off streaming,
    usage reporting or the no-hidden-retries rule."""
    options: dict[str, Any] = skip_mcp_gateway() if request.tools else {}
    if request.api_key:
        options["api_key"] = request.api_key
    if request.api_base:
        options["api_base"] = request.api_base
    if request.max_tokens:
        options["max_tokens"] = request.max_tokens
    options.update(request.extra)
    return {
        "model": request.model,
        **chat_fields(request, options),
        "num_retries": 0,
        "max_retries": 0,
    }


def skip_mcp_gateway() -> dict[str, Any]:
    """All providers (LiteLLM 1.106): a call with ``tools=`` first imports LiteLLM's MCP-gateway
    handler, which needs the optional ``mcp`` package and otherwise fails the call with "No
    module named 'mcp'". Our tools are plain function tools, never MCP servers, so the gateway
    check is switched off with LiteLLM's own internal flag (it is not sent to the provider)."""
    return {"_skip_mcp_handler": True}


# ---- responses: LiteLLM stream chunks -> StreamChunk ----


def add_litellm_chunk(step: StepBuilder, chunk: Any) -> Iterator[Delta]:
    """Feed one ``ModelResponseStream`` to the step; yields the deltas it carried."""
    if getattr(chunk, "usage", None) is not None:
        step.usage = chunk.usage
    for choice in chunk.choices or ():
        step.finish_reason = choice.finish_reason or step.finish_reason
        delta = choice.delta
        if reasoning := getattr(delta, "reasoning_content", None):
            yield from step.add_reasoning(reasoning)
        yield from step.add_thinking_blocks(getattr(delta, "thinking_blocks", None) or ())
        if delta.content:
            yield from step.add_text(delta.content)
        for call in delta.tool_calls or ():
            function = call.function
            name = function.name if function is not None else None
            arguments = function.arguments if function is not None else None
            step.add_tool_call(call.index, call.id, name, arguments)


# ---- how the provider stream ended ----

GEMINI_PROVIDERS = frozenset({"gemini", "vertex_ai", "vertex_ai_beta"})


def stream_end_error(
    response: Any, gemini_finished: Callable[[], bool] | None, provider: str
) -> ProviderError | None:
    """None if the provider finished the stream; else what went wrong, as far as can be told.

    All providers (LiteLLM 1.106): a stream that ends without the provider's finish reason
    gets a made-up "stop" (``CustomStreamWrapper.finish_reason_handler``). What the provider
    sent is kept in the wrapper's ``received_finish_reason`` (OpenAI, Anthropic; Gemini: see
    ``watch_gemini_finish``). Anthropic's and Gemini's iterators take a line that is not JSON
    for the start of one split in transit, and from then on join every line into a buffer that
    never parses (``chunk_type == "accumulated_json"``)."""
    if gemini_finished is not None:
        finished = gemini_finished()
    else:
        finished = getattr(response, "received_finish_reason", None) is not None
    if finished:
        return None
    if getattr(response.completion_stream, "chunk_type", None) == "accumulated_json":
        return invalid_json_error(provider)
    return unfinished_stream_error(provider)


def not_an_event_stream(response: Any, provider: str) -> ProviderError | None:
    """All providers (LiteLLM 1.106): a 200 that is not an event stream (a proxy's HTML page,
    a gateway's JSON) is read as one in which no event came, and ends as a finished, empty
    step. So the content-type is checked as soon as the stream is open (none at all passes:
    a body that is not an event stream then ends without a finish reason)."""
    http = stream_http_response(response.completion_stream)
    content_type = media_type(http.headers.get("content-type")) if http is not None else ""
    if content_type in ("", "text/event-stream"):
        return None
    return not_an_event_stream_error(provider, content_type)


async def watch_gemini_finish(response: Any) -> Callable[[], bool] | None:
    """Gemini (LiteLLM 1.106): every streamed chunk comes out of LiteLLM with finish_reason
    "stop" (a candidate without ``finishReason`` maps to it) and ``received_finish_reason`` is
    never set, so only Gemini's raw chunks say whether it finished. Each passes through the
    stream iterator's ``chunk_parser``, wrapped here on this one iterator before the first
    chunk, which means opening the stream now (``fetch_stream``, as LiteLLM's first
    ``__anext__`` would). Returns "did a chunk carry a finishReason?"; None for other
    providers."""
    if getattr(response, "custom_llm_provider", None) not in GEMINI_PROVIDERS:
        return None
    stream = await response.fetch_stream()
    parse = getattr(stream, "chunk_parser", None)
    if parse is None:
        return None
    finishes: list[str] = []

    def watching(chunk: Any) -> Any:
        # A blocked prompt has no candidates: it is finished (and retrying would block again).
        feedback = chunk.get("promptFeedback") if isinstance(chunk, dict) else None
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            finishes.append(str(feedback["blockReason"]))
        candidates = chunk.get("candidates") if isinstance(chunk, dict) else None
        for candidate in candidates or ():
            if isinstance(candidate, dict) and candidate.get("finishReason"):
                finishes.append(candidate["finishReason"])
        return parse(chunk=chunk)

    stream.chunk_parser = watching
    return lambda: bool(finishes)


def stream_http_response(completion_stream: Any) -> httpx.Response | None:
    """The HTTP response under LiteLLM's stream iterator: the openai SDK's ``AsyncStream`` and
    LiteLLM's Gemini iterator keep it as ``response``; Anthropic's only inside its lines."""
    response = getattr(completion_stream, "response", None)
    if isinstance(response, httpx.Response):
        return response
    return anthropic_http_response(completion_stream)


# ---- the provider stream's lifetime ----


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
