"""What an OpenAI-compatible server may send besides a good event stream: error bodies and error
events, and a 200 that is not an event stream. Read by ``openai_native``."""

import json
from typing import Any

import httpx

from opencode.llm.errors import not_an_event_stream_error, to_provider_error
from opencode.llm.types import ProviderError

PROVIDER = "openai"


def whole_body(content_type: str, body: bytes) -> bytes | ProviderError:
    """A 200 that is not an event stream, as the reads of one, or the error it amounts to.

    Gateways that ignore ``stream: true`` answer with the whole ``chat.completion`` as JSON: it
    is read as one chunk carrying the whole message and its finish reason. JSON with an
    ``error`` is that error; anything else (a proxy's HTML login page) fails the step."""
    text = body.decode(errors="replace")
    if content_type == "application/json":
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("error"):
            return stream_error_event(document["error"])
        if isinstance(document, dict) and (chunk := completion_as_chunk(document)) is not None:
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return not_an_event_stream_error(PROVIDER, content_type, text)


def completion_as_chunk(completion: dict[str, Any]) -> dict[str, Any] | None:
    """A ``chat.completion`` as the one ``chat.completion.chunk`` that says all of it."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    streamed = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return None
        calls = message.get("tool_calls") or []
        delta = {**message, "tool_calls": [{**call, "index": n} for n, call in enumerate(calls)]}
        finish = choice.get("finish_reason")
        streamed.append({"index": choice.get("index", 0), "delta": delta, "finish_reason": finish})
    return {**completion, "object": "chat.completion.chunk", "choices": streamed}


def stream_error_event(error: Any) -> ProviderError:
    """vLLM, OpenRouter and other gateways report a failure after the 200 as a chunk of its own,
    ``{"error": {"message": ..., "code": ...}}``. With an HTTP status as its code it is read like
    that status; without one it is the server failing mid-answer, retryable like a 5xx."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    code = str(error.get("code"))
    if not (code.isdigit() and len(code) == 3):
        return ProviderError(f"{PROVIDER} error: {error.get('message') or error}", retryable=True)
    return to_provider_error(HTTPFailure(int(code), json.dumps({"error": error})), PROVIDER)


class HTTPFailure(Exception):
    """A provider failure in the shape ``errors.to_provider_error`` reads: ``status_code``,
    ``headers`` (for Retry-After) and ``message`` (a JSON error body, whose ``error.message``
    becomes the ProviderError's text)."""

    def __init__(self, status_code: int, message: str, headers: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers

    @classmethod
    def of(cls, response: httpx.Response, body: bytes) -> "HTTPFailure":
        text = body.decode(errors="replace").strip() or response.reason_phrase
        return cls(response.status_code, text, response.headers)
