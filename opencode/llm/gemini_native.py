"""Gemini ``streamGenerateContent`` streamed with httpx and parsed here, without LiteLLM.

Used for ``gemini/<model>`` (Google AI Studio, or a gateway at ``GEMINI_API_BASE``). Through
LiteLLM each streamed response is rebuilt as pydantic objects several times over (its Gemini
iterator, then ``CustomStreamWrapper``), and ``LiteLLMClient`` must wrap the iterator's parser
to learn whether Gemini finished at all (``litellm_adapter.watch_gemini_finish``); here an event
is one ``json.loads`` and a few dict lookups. Shared with the LiteLLM path: failures
(``errors``), accumulation and cost (``accumulate``, priced by ``prices`` from LiteLLM's offline
cost map). The request: ``gemini_request``; bodies other than a good event stream:
``gemini_bodies``.

Each ``data:`` line is one ``GenerateContentResponse``, read as LiteLLM reads it, so that the
step (text, reasoning, tool calls and their ids, finish reason, usage, cost) is the one
``LiteLLMClient`` makes of the same bytes:

* parts: ``thought: true`` text is reasoning, other text is the reply, a ``functionCall`` a
  whole tool call, its id Gemini's own or ``call_<28 hex>``, with the part's
  ``thoughtSignature`` appended as ``__thought__<signature>`` (``gemini_request`` takes it back
  out on replay). In each response the reasoning comes before the text, as LiteLLM orders them.
* ``finishReason``: MAX_TOKENS is "length"; SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT,
  SPII, LANGUAGE, OTHER and the image ones are "content_filter"; the rest "stop" (tool calls
  make it "tool_calls"). A prompt Google blocked (``promptFeedback.blockReason``) ends the step
  with "content_filter" (``LiteLLMClient`` reports that stream as unfinished).
* ``usageMetadata`` (each response carries the totals so far): prompt tokens (plus tool-use
  prompt tokens), candidate tokens plus thoughts when Google counted them apart, thoughts as
  reasoning, ``cachedContentTokenCount`` as cache reads.

A line over ``MAX_LINE_BYTES``, a line that is not JSON, an ``error`` event, a 200 that is not
an event stream, a stream that ends without a ``finishReason`` fail the step with a
``ProviderError`` that says so.
"""

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from opencode.llm.accumulate import Delta, StepBuilder
from opencode.llm.errors import invalid_json_error
from opencode.llm.gemini_bodies import (
    PROVIDER,
    error_body,
    stream_error_event,
    whole_body,
)
from opencode.llm.gemini_request import SIGNATURE_SEPARATOR, auth_headers, request_body, stream_url
from opencode.llm.http_stream import PooledClient
from opencode.llm.sse import data_payloads
from opencode.llm.types import ModelRequest, ProviderError, StreamChunk, Usage

# One event: Gemini sends each functionCall whole, so a call that writes a long text is one
# line; the step's output cap (OPENCODE_MAX_STEP_OUTPUT_CHARS) is what bounds it first.
MAX_LINE_BYTES = 16 * 2**20
CONTENT_FILTER = frozenset(
    {"SAFETY", "RECITATION", "LANGUAGE", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"}
    | {"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "NO_IMAGE", "IMAGE_RECITATION"}
    | {"IMAGE_OTHER", "ESCALATION"}
)


class GeminiStreamClient(PooledClient):
    """``ModelClient`` for ``gemini/<model>`` requests; the pooled HTTP client, the idle timeout
    and closing are ``http_stream.PooledClient``'s."""

    provider = PROVIDER
    error_body = staticmethod(error_body)
    whole_body = staticmethod(whole_body)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        exchange = await self.post(
            stream_url(request), request_body(request), auth_headers(request.api_key)
        )
        try:
            step = StepBuilder(PROVIDER, request.max_output_chars)
            calls = _CallCount()
            async for payload in data_payloads(exchange.reads(), PROVIDER, MAX_LINE_BYTES):
                for delta in add_gemini_response(step, parse_response(payload), calls):
                    yield delta
            for chunk in step.finish(request.model):
                yield chunk
        finally:
            await exchange.close()


# ---- responses: SSE GenerateContentResponse JSON -> StreamChunk ----


class _CallCount:
    """Tool calls seen so far in the step: each new one's index."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


def parse_response(payload: bytes) -> dict[str, Any]:
    # Decoded first, bytes that are not UTF-8 as U+FFFD (see openai_native.parse_chunk).
    text = payload.decode(errors="replace")
    try:
        response = json.loads(text)
    except ValueError:
        raise invalid_json_error(PROVIDER, text) from None
    if not isinstance(response, dict):
        message = f"{PROVIDER}: the stream sent an event that is not a JSON object: {text[:200]}"
        raise ProviderError(message, retryable=True)
    if "error" in response:
        raise stream_error_event(response["error"])
    return response


def add_gemini_response(
    step: StepBuilder, response: dict[str, Any], calls: _CallCount
) -> Iterator[Delta]:
    """Feed one ``GenerateContentResponse`` to the step; yields the deltas it carried."""
    feedback = response.get("promptFeedback")
    if isinstance(feedback, dict) and "blockReason" in feedback:
        step.finish_reason = "content_filter"
    candidates = response.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else ():
        if not isinstance(candidate, dict):
            continue
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        parts = [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []
        thoughts = [p for p in parts if p.get("thought") is True]
        if reasoning := "".join(_text(p) for p in thoughts):
            yield from step.add_reasoning(reasoning)
        if text := "".join(_text(p) for p in parts if p.get("thought") is not True):
            yield from step.add_text(text)
        for part in parts:
            if isinstance(function := part.get("functionCall"), dict):
                arguments = json.dumps(function.get("args"), ensure_ascii=False)
                call_id = tool_call_id(function.get("id"), part.get("thoughtSignature"))
                step.add_tool_call(calls.n, call_id, function.get("name"), arguments)
                calls.n += 1
        if reason := candidate.get("finishReason"):
            step.finish_reason = finish_reason(str(reason))
    if isinstance(metadata := response.get("usageMetadata"), dict):
        step.usage = usage(metadata)


def _text(part: dict[str, Any]) -> str:
    text = part.get("text")
    return text if isinstance(text, str) else ""


def tool_call_id(native: Any, signature: Any) -> str:
    """Gemini's own id (Gemini 3.5+) or one made up as LiteLLM makes them, the part's thought
    signature appended as LiteLLM appends it (``call_..__thought__<signature>``)."""
    call_id = native if isinstance(native, str) and native else f"call_{uuid.uuid4().hex[:28]}"
    if isinstance(signature, str) and signature:
        return f"{call_id}{SIGNATURE_SEPARATOR}{signature}"
    return call_id


def finish_reason(reason: str) -> str:
    """Gemini's ``finishReason`` as LiteLLM's ``map_finish_reason`` maps it."""
    if reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if reason in CONTENT_FILTER else "stop"


def usage(metadata: dict[str, Any]) -> Usage:
    """``usageMetadata`` counted as LiteLLM's ``VertexGeminiConfig._calculate_usage`` counts it:
    thoughts are added to the candidates unless ``totalTokenCount`` shows they were in them."""
    prompt, candidates = (
        _count(metadata, "promptTokenCount"),
        _count(metadata, "candidatesTokenCount"),
    )
    tool_use, thoughts = (
        _count(metadata, "toolUsePromptTokenCount"),
        _count(metadata, "thoughtsTokenCount"),
    )
    inclusive = prompt + candidates + tool_use == _count(metadata, "totalTokenCount")
    return Usage(
        input_tokens=prompt + tool_use,
        output_tokens=candidates if inclusive else candidates + thoughts,
        reasoning_tokens=thoughts,
        cache_read_tokens=_count(metadata, "cachedContentTokenCount"),
    )


def _count(metadata: dict[str, Any], key: str) -> int:
    value = metadata.get(key)
    return value if isinstance(value, int) and value > 0 else 0
