"""OpenAI-compatible chat completions streamed with httpx and parsed here, without LiteLLM.

Used for ``openai/<model>``: OpenAI itself and the gateways and local servers reached through
``OPENAI_API_BASE``. Through LiteLLM each streamed chunk costs the server most of a millisecond
of CPU (the openai SDK builds pydantic objects from it, LiteLLM rebuilds them as its own, then
walks them all again at the end of the stream; see bench/README.md); here a chunk is one
``json.loads`` and a few dict lookups. Everything else is shared with the LiteLLM path: the request messages
(``messages``), failures (``errors``), and accumulation, usage and cost (``accumulate``, priced
from LiteLLM's offline cost map). Bodies other than a good event stream: ``openai_bodies``.

The event stream is read as OpenAI-compatible servers write it (``sse``): each ``data:`` line
is one chunk, a line of JSON. What a server or a gateway in front of it may send instead fails
the step with a ``ProviderError`` that says so: a line over ``MAX_LINE_BYTES``, a line that is
not JSON, a 200 that is not an event stream, a stream that ends without a finish reason (one
with a finish reason but no ``[DONE]`` is complete).
"""

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

from opencode.llm.accumulate import Delta, StepBuilder
from opencode.llm.errors import invalid_json_error
from opencode.llm.http_stream import PooledClient
from opencode.llm.messages import chat_fields
from opencode.llm.openai_bodies import (
    PROVIDER,
    HTTPFailure,
    stream_error_event,
    whole_body,
)
from opencode.llm.sse import data_payloads
from opencode.llm.types import ModelRequest, ProviderError, StreamChunk, Usage

OPENAI_API_BASE = "https://api.openai.com/v1"
MAX_LINE_BYTES = 2**20  # one event: OpenAI's are a few KiB at most (tool arguments come in pieces)
# Arguments of ``litellm.acompletion`` that callers may put in ``ModelRequest.extra`` and that
# mean nothing to (or would be rejected by) an OpenAI-compatible server.
LITELLM_ONLY_KEYS = frozenset(
    {"timeout", "num_retries", "max_retries", "_skip_mcp_handler", "api_key", "api_base"}
    | {"base_url", "custom_llm_provider", "drop_params"}
)


class OpenAIStreamClient(PooledClient):
    """``ModelClient`` for ``openai/<model>`` requests; the pooled HTTP client, the idle timeout
    and closing are ``http_stream.PooledClient``'s."""

    provider = PROVIDER
    error_body = staticmethod(HTTPFailure.of)
    whole_body = staticmethod(whole_body)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        exchange = await self.post(
            chat_completions_url(request.api_base),
            request_body(request),
            auth_headers(request.api_key),
        )
        try:
            step = StepBuilder(PROVIDER, request.max_output_chars)
            async for payload in data_payloads(exchange.reads(), PROVIDER, MAX_LINE_BYTES):
                for delta in add_openai_chunk(step, parse_chunk(payload)):
                    yield delta
            for chunk in step.finish(request.model):
                yield chunk
        finally:
            await exchange.close()


# ---- requests ----


def chat_completions_url(api_base: str | None) -> str:
    return f"{(api_base or OPENAI_API_BASE).rstrip('/')}/chat/completions"


def auth_headers(api_key: str | None) -> dict[str, str]:
    """No key, no header: local servers often need none (the openai SDK would refuse to call)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The chat completions body; ``request.extra`` is passed through (e.g. ``reasoning_effort``)
    but cannot switch off streaming or usage reporting."""
    options: dict[str, Any] = {}
    if request.max_tokens:
        options[max_tokens_field(request.api_base)] = request.max_tokens
    options.update((k, v) for k, v in request.extra.items() if k not in LITELLM_ONLY_KEYS)
    return {"model": request.model.split("/", 1)[1], **chat_fields(request, options)}


def max_tokens_field(api_base: str | None) -> str:
    """OpenAI deprecated ``max_tokens`` for ``max_completion_tokens``, which every current model
    accepts and its reasoning models (o-series, gpt-5) require. OpenAI-compatible servers
    (llama.cpp, Ollama, LM Studio, older vLLM, many gateways) may know only ``max_tokens``, so it
    is kept for any base URL but OpenAI's own."""
    host = urlsplit(api_base).hostname if api_base else "api.openai.com"
    return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"


# ---- responses: SSE JSON chunks -> StreamChunk ----


def parse_chunk(payload: bytes) -> dict[str, Any]:
    # Decoded first (bytes would make json sniff their encoding), bytes that are not UTF-8 as
    # U+FFFD: a gateway that cut a character in two garbles one character, not the step.
    text = payload.decode(errors="replace")
    try:
        chunk = json.loads(text)
    except ValueError:
        raise invalid_json_error(PROVIDER, text) from None
    if not isinstance(chunk, dict):
        message = f"{PROVIDER}: the stream sent a chunk that is not a JSON object: {text[:200]}"
        raise ProviderError(message, retryable=True)
    if chunk.get("error") and not chunk.get("choices"):
        raise stream_error_event(chunk["error"])
    return chunk


def add_openai_chunk(step: StepBuilder, chunk: dict[str, Any]) -> Iterator[Delta]:
    """Feed one ``chat.completion.chunk`` to the step; yields the deltas it carried."""
    if usage := chunk.get("usage"):
        step.usage = usage_object(usage)
    for choice in chunk.get("choices") or ():
        step.finish_reason = choice.get("finish_reason") or step.finish_reason
        delta = choice.get("delta") or {}
        if reasoning := reasoning_text(delta):
            yield from step.add_reasoning(reasoning)
        if isinstance(content := delta.get("content"), str) and content:
            yield from step.add_text(content)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            step.add_tool_call(
                call.get("index"), call.get("id"), function.get("name"), function.get("arguments")
            )


def reasoning_text(delta: dict[str, Any]) -> str | None:
    """DeepSeek, vLLM and LiteLLM-style gateways stream reasoning as ``reasoning_content``;
    OpenRouter, Ollama and newer vLLM as ``reasoning``. Only text is taken (OpenRouter's
    structured ``reasoning_details`` repeat it)."""
    text = delta.get("reasoning_content") or delta.get("reasoning")
    return text if isinstance(text, str) else None


def usage_object(usage: dict[str, Any]) -> Usage:
    """The usage chunk's counts, as LiteLLM's path counts them (``litellm.Usage`` read by
    ``accumulate.to_usage``), without LiteLLM: ``prompt_tokens`` (cached ones included),
    ``completion_tokens`` (reasoning included), reasoning from
    ``completion_tokens_details.reasoning_tokens`` (else a top-level ``reasoning_tokens``),
    cache reads from ``cache_read_input_tokens``, else DeepSeek's ``prompt_cache_hit_tokens``,
    else ``prompt_tokens_details.cached_tokens``, cache writes from
    ``cache_creation_input_tokens``. A count that is not an integer is not read."""
    prompt = _details(usage.get("prompt_tokens_details"))
    completion = _details(usage.get("completion_tokens_details"))
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")) or 0,
        output_tokens=_count(usage.get("completion_tokens")) or 0,
        reasoning_tokens=_first_count(
            completion.get("reasoning_tokens"), usage.get("reasoning_tokens")
        ),
        cache_read_tokens=_first_count(
            usage.get("cache_read_input_tokens"),
            usage.get("prompt_cache_hit_tokens"),
            prompt.get("cached_tokens"),
        ),
        cache_write_tokens=_count(usage.get("cache_creation_input_tokens")) or 0,
    )


def _details(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_count(*values: Any) -> int:
    """The first of ``values`` that is a count (0 included), or 0."""
    return next((count for value in values if (count := _count(value)) is not None), 0)
