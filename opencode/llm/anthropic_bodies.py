"""What the Anthropic Messages API (or a gateway in front of it) may send besides a good event
stream: error events, error bodies, and a 200 that is not an event stream. Read by
``anthropic_native``.

Error bodies (``{"type": "error", "error": {"type": ..., "message": ...}}`` with an HTTP status)
are read by ``errors.to_provider_error`` like any provider's, Retry-After included. An ``error``
event after the 200 has no status of its own: its error type says which it would have been
(``overloaded_error`` is Anthropic's 529), where LiteLLM reads every one as a 500.
"""

import json
from collections.abc import Iterator
from typing import Any

from opencode.llm.errors import not_an_event_stream_error, to_provider_error
from opencode.llm.openai_bodies import HTTPFailure
from opencode.llm.types import ProviderError

PROVIDER = "anthropic"


# Anthropic's error types and the HTTP status each comes with (docs.anthropic.com/en/api/errors).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_event(error: Any) -> ProviderError:
    """An ``error`` event (or a 200 JSON body that is one), read like the HTTP status its type
    comes with; an unknown type as the server failing mid-answer, a retryable 500."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    status = ERROR_STATUS.get(str(error.get("type")), 500)
    body = json.dumps({"type": "error", "error": error})
    return to_provider_error(HTTPFailure(status, body), PROVIDER)


def whole_body(content_type: str, body: bytes) -> bytes | ProviderError:
    """A 200 that is not an event stream, as the reads of one, or the error it amounts to.

    A gateway that ignores ``stream: true`` answers with the whole message as JSON: it is read
    as the events that would have streamed it. JSON that is an error is that error; anything
    else (a proxy's HTML login page) fails the step. (LiteLLM fails them all alike.)"""
    text = body.decode(errors="replace")
    if content_type == "application/json":
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("type") == "error":
            return error_event(document.get("error"))
        if isinstance(document, dict) and document.get("type") == "message":
            return b"".join(_sse(event) for event in message_events(document))
    return not_an_event_stream_error(PROVIDER, content_type, text)


def message_events(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A whole ``message`` as the events that stream it."""
    usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
    start = {**message, "content": [], "stop_reason": None, "usage": usage}
    yield {"type": "message_start", "message": start}
    content = message.get("content")
    for index, block in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            yield _start(index, {"type": "text", "text": ""})
            yield _delta(index, {"type": "text_delta", "text": block.get("text") or ""})
        elif kind == "thinking":
            yield _start(index, {"type": "thinking", "thinking": "", "signature": ""})
            yield _delta(index, {"type": "thinking_delta", "thinking": block.get("thinking") or ""})
            if block.get("signature"):
                yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            yield _start(index, {**block, "input": {}})
            yield _delta(index, {"type": "input_json_delta", "partial_json": arguments})
        else:
            yield _start(index, block)  # redacted_thinking, or a block we do not read
        yield {"type": "content_block_stop", "index": index}
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": None}
    yield {"type": "message_delta", "delta": delta, "usage": usage}
    yield {"type": "message_stop"}


def _start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
