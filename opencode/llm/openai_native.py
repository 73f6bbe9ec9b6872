"""OpenAI-compatible chat completions streamed with httpx and parsed here, without LiteLLM.

Used for ``openai/<model>``: OpenAI itself and the gateways and local servers reached through
``OPENAI_API_BASE``. Through LiteLLM each streamed chunk costs the server ~0.75 ms of CPU (the
openai SDK builds pydantic objects from it, LiteLLM rebuilds them as its own, then walks them all
again at the end of the stream; see bench/README.md); here a chunk is one ``json.loads`` and a
few dict lookups. Everything else is shared with the LiteLLM path: the request messages
(``messages``), failures (``errors``), and accumulation, usage and cost (``accumulate``, priced
from LiteLLM's offline cost map).

The SSE reader takes each ``data:`` line as one chunk: OpenAI-compatible servers send every chunk
as one line of JSON. Other fields (``event:``, ``id:``) and ``:`` keep-alive comments are skipped.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

import opencode.core.env  # noqa: F401  (LiteLLM's offline settings, before LiteLLM loads)

# isort: split
import litellm

from opencode.llm.accumulate import StepBuilder
from opencode.llm.errors import stalled_stream_error, to_provider_error
from opencode.llm.messages import to_litellm_messages, to_litellm_tool
from opencode.llm.types import ModelRequest, ProviderError, ReasoningDelta, StreamChunk, TextDelta

T = TypeVar("T")

OPENAI_API_BASE = "https://api.openai.com/v1"
PROVIDER = "openai"
# Reads are bounded by ``idle_timeout`` per line instead: a step may stream for many minutes.
HTTP_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0)
HTTP_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=32, keepalive_expiry=30)
# Arguments of ``litellm.acompletion`` that callers may put in ``ModelRequest.extra`` and that
# mean nothing to (or would be rejected by) an OpenAI-compatible server.
LITELLM_ONLY_KEYS = frozenset(
    {"timeout", "num_retries", "max_retries", "_skip_mcp_handler", "api_key", "api_base"}
    | {"base_url", "custom_llm_provider", "drop_params"}
)


class OpenAIStreamClient:
    """``ModelClient`` for ``openai/<model>`` requests, over one shared ``httpx.AsyncClient``.

    Pass ``http`` to use a client you own (and close); without it one is created on first use
    and closed by ``aclose()``. ``idle_timeout`` bounds every wait on the provider (the response
    headers, then each line of the stream), as in ``LiteLLMClient``; None waits forever.
    Closing the stream (``aclose``, or cancelling the consumer) closes the HTTP response at once.
    """

    def __init__(
        self, http: httpx.AsyncClient | None = None, *, idle_timeout: float | None = 300.0
    ) -> None:
        self._http = http
        self._owns_http = http is None
        self.idle_timeout = idle_timeout

    async def aclose(self) -> None:
        """Close the HTTP client this instance created (a client passed in is left open)."""
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        http = self._http_client()
        call = http.build_request(
            "POST",
            chat_completions_url(request.api_base),
            json=request_body(request),
            headers=auth_headers(request.api_key),
        )
        response = await self._wait(http.send(call, stream=True))
        try:
            if response.status_code != 200:
                body = await self._wait(response.aread())
                raise to_provider_error(_StatusError(response, body), PROVIDER)
            step = StepBuilder()
            lines = response.aiter_lines()
            while (line := await self._wait(anext(lines, None))) is not None:
                if not line.startswith("data:"):
                    continue  # blank separators, event:/id: fields, ": keep-alive" comments
                payload = line[5:].strip()
                if payload != "[DONE]":  # read on to the end, so the connection can be reused
                    for delta in add_openai_chunk(step, parse_chunk(payload)):
                        yield delta
            yield step.output(request.model)
        finally:
            await _close_response(response)

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS)
        return self._http

    async def _wait(self, provider_call: Awaitable[T]) -> T:
        """Await the provider within ``idle_timeout``, one deadline per wait (never across a
        ``yield``, which would count the consumer's time as the provider's)."""
        idle = asyncio.timeout(self.idle_timeout)
        try:
            async with idle:
                return await provider_call
        except Exception as exc:
            if idle.expired() and self.idle_timeout is not None:
                raise stalled_stream_error(PROVIDER, self.idle_timeout) from exc
            raise to_provider_error(exc, PROVIDER) from exc


# ---- requests ----


def chat_completions_url(api_base: str | None) -> str:
    return f"{(api_base or OPENAI_API_BASE).rstrip('/')}/chat/completions"


def auth_headers(api_key: str | None) -> dict[str, str]:
    """No key, no header: local servers often need none (the openai SDK would refuse to call)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The chat completions body; ``request.extra`` is passed through (e.g. ``reasoning_effort``)
    but cannot switch off streaming or usage reporting."""
    body: dict[str, Any] = {
        "model": request.model.split("/", 1)[1],
        "messages": to_litellm_messages(request),
    }
    if request.tools:
        body["tools"] = [to_litellm_tool(spec) for spec in request.tools]
    if request.max_tokens:
        body[max_tokens_field(request.api_base)] = request.max_tokens
    body.update((k, v) for k, v in request.extra.items() if k not in LITELLM_ONLY_KEYS)
    # Without include_usage OpenAI sends no usage chunk, so tokens and cost would read 0.
    body.update(stream=True, stream_options={"include_usage": True})
    return body


def max_tokens_field(api_base: str | None) -> str:
    """OpenAI deprecated ``max_tokens`` for ``max_completion_tokens``, which every current model
    accepts and its reasoning models (o-series, gpt-5) require. OpenAI-compatible servers
    (llama.cpp, Ollama, LM Studio, older vLLM, many gateways) may know only ``max_tokens``, so it
    is kept for any base URL but OpenAI's own."""
    host = urlsplit(api_base).hostname if api_base else "api.openai.com"
    return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"


# ---- responses: SSE JSON chunks -> StreamChunk ----


def parse_chunk(payload: str) -> dict[str, Any]:
    try:
        chunk = json.loads(payload)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise ProviderError(f"{PROVIDER}: the stream sent a chunk that is not a JSON object: "
                            f"{payload[:200]!r}")
    if chunk.get("error") and not chunk.get("choices"):
        raise stream_error_event(chunk["error"])
    return chunk


def add_openai_chunk(step: StepBuilder, chunk: dict[str, Any]) -> Iterator[TextDelta | ReasoningDelta]:
    """Feed one ``chat.completion.chunk`` to the step; yields the deltas it carried."""
    if usage := chunk.get("usage"):
        step.usage = usage_object(usage)
    for choice in chunk.get("choices") or ():
        step.finish_reason = choice.get("finish_reason") or step.finish_reason
        delta = choice.get("delta") or {}
        if reasoning := reasoning_text(delta):
            yield step.add_reasoning(reasoning)
        if content := delta.get("content"):
            yield step.add_text(content)
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


def usage_object(usage: dict[str, Any]) -> Any:
    """The usage chunk as the ``litellm.Usage`` that LiteLLM's own path hands to
    ``accumulate`` (it also folds in gateways' extra fields, such as DeepSeek's cache hits)."""
    try:
        return litellm.Usage(**usage)
    except Exception:  # a field LiteLLM cannot read: keep the token counts
        counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")}
        return litellm.Usage(**{k: v for k, v in counts.items() if isinstance(v, int)})


def stream_error_event(error: Any) -> ProviderError:
    """vLLM, OpenRouter and other gateways report a failure after the 200 as a chunk of its own,
    ``{"error": {"message": ..., "code": ...}}``. It is the server failing mid-answer, like a
    5xx, so it is retryable unless its code says the request itself was wrong (4xx)."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    code = error.get("code")
    status = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    retryable = status is None or status >= 500 or status in (408, 409, 429)
    label = f"{PROVIDER} error {status}" if status else f"{PROVIDER} error"
    message = str(error.get("message") or error)[:300]
    return ProviderError(f"{label}: {message}", status_code=status, retryable=retryable)


class _StatusError(Exception):
    """A non-200 answer in the shape ``errors.to_provider_error`` reads: ``status_code``,
    ``headers`` (for Retry-After) and ``message`` (the JSON error body, whose ``error.message``
    becomes the ProviderError's text)."""

    def __init__(self, response: httpx.Response, body: bytes) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.message = body.decode(errors="replace").strip() or response.reason_phrase
        super().__init__(self.message)


async def _close_response(response: httpx.Response) -> None:
    """Close the HTTP response now, not at garbage collection (also after a cancellation)."""
    try:
        await response.aclose()
    finally:
        # The transport closes its socket in a call_soon callback: let it run, so that the
        # provider sees the disconnect by the time our generator is closed.
        await asyncio.sleep(0)
