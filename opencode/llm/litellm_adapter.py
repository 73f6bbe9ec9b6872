"""The ``ModelClient`` over ``litellm.acompletion``: Anthropic, Gemini, and OpenAI when the native
path (``openai_native``) is switched off.

Requests are translated in ``messages`` and failures in ``errors``; this module reads the stream
and feeds it, delta by delta, to ``accumulate.StepBuilder`` (``litellm.stream_chunk_builder``
re-walks every chunk and is deliberately not used). Every provider quirk is a named helper.
LiteLLM's own retries are disabled (``num_retries=0``, and ``max_retries=0`` for the OpenAI SDK
it wraps): retrying is ``RetryingClient``'s job, and only it knows whether output already
reached the user.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import litellm

from opencode.llm.accumulate import StepBuilder
from opencode.llm.errors import within_idle
from opencode.llm.messages import chat_fields
from opencode.llm.types import ModelRequest, ReasoningDelta, StreamChunk, TextDelta

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
            step = StepBuilder()
            while (chunk := await within_idle(anext(response, None), idle, provider)) is not None:
                for delta in add_litellm_chunk(step, chunk):
                    yield delta
            yield step.output(request.model)
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


def add_litellm_chunk(step: StepBuilder, chunk: Any) -> Iterator[TextDelta | ReasoningDelta]:
    """Feed one ``ModelResponseStream`` to the step; yields the deltas it carried."""
    if getattr(chunk, "usage", None) is not None:
        step.usage = chunk.usage
    for choice in chunk.choices or ():
        step.finish_reason = choice.finish_reason or step.finish_reason
        delta = choice.delta
        if reasoning := getattr(delta, "reasoning_content", None):
            yield step.add_reasoning(reasoning)
        step.add_thinking_blocks(getattr(delta, "thinking_blocks", None) or ())
        if delta.content:
            yield step.add_text(delta.content)
        for call in delta.tool_calls or ():
            function = call.function
            name = function.name if function is not None else None
            arguments = function.arguments if function is not None else None
            step.add_tool_call(call.index, call.id, name, arguments)


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
