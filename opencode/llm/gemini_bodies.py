"""What Gemini (or a gateway in front of it) may send besides a good event stream: Google's
error bodies and error events, and a 200 that is not an event stream. Read by ``gemini_native``.

Google's errors are ``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED",
"details": [...]}}`` (``streamGenerateContent`` without ``alt=sse`` wraps them in a JSON array).
They become a ``ProviderError`` the way ``errors.to_provider_error`` reads any HTTP failure
(the message is Google's ``message``; retryable for 408, 409, 429 and 5xx; context overflow
from the message). A wait comes from ``Retry-After`` when sent, else from the
``google.rpc.RetryInfo`` detail Google attaches to quota errors (``"retryDelay": "27s"``),
which LiteLLM does not read.
"""

import json
import re
from typing import Any

import httpx

from opencode.llm.errors import not_an_event_stream_error, to_provider_error
from opencode.llm.openai_bodies import HTTPFailure
from opencode.llm.types import ProviderError

PROVIDER = "gemini"
# google.rpc.Code names -> the HTTP status Google maps them to, for an error without a code
RPC_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def error_body(response: httpx.Response, body: bytes) -> ProviderError:
    """A non-200: its status and Google's error in it."""
    text = body.decode(errors="replace").strip()
    error = google_error(text)
    if error is None:
        return to_provider_error(HTTPFailure.of(response, body), PROVIDER)
    return provider_error(response.status_code, error, response.headers)


def stream_error_event(error: Any) -> ProviderError:
    """An ``error`` in place of a response after the 200 (Google sends quota and overload
    errors that way mid-stream): read like the HTTP status its code (or status) names; without
    either it is the server failing mid-answer, a 500."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    code = error.get("code")
    if not (isinstance(code, int) or (isinstance(code, str) and code.isdigit())):
        code = RPC_STATUS.get(str(error.get("status")), 500)
    return provider_error(int(code), error, None)


def provider_error(status: int, error: dict[str, Any], headers: Any) -> ProviderError:
    message = error.get("message") or error.get("status") or "unknown error"
    body = json.dumps({"error": {"message": str(message)}})
    failure = to_provider_error(HTTPFailure(status, body, headers), PROVIDER)
    if failure.retry_after is None:
        failure.retry_after = retry_delay(error)
    return failure


def google_error(text: str) -> dict[str, Any] | None:
    """The ``error`` object of a Google error body (alone or first in an array)."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if isinstance(document, list) and document:
        document = document[0]
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else None


def retry_delay(error: dict[str, Any]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "27.5s"``)."""
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def whole_body(content_type: str, body: bytes) -> bytes | ProviderError:
    """A 200 that is not an event stream, as the reads of one, or the error it amounts to.

    ``streamGenerateContent`` without ``alt=sse`` (a gateway that dropped the query) answers
    with a JSON array of the responses it would have streamed; ``generateContent`` with one
    response. Each is read as one event. JSON with an ``error`` is that error; anything else
    (a proxy's HTML login page) fails the step."""
    text = body.decode(errors="replace")
    if content_type == "application/json":
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        responses = document if isinstance(document, list) else [document]
        if responses and all(isinstance(r, dict) for r in responses):
            for response in responses:
                if response.get("error"):
                    return stream_error_event(response["error"])
            if all(_is_response(r) for r in responses):
                return b"".join(b"data: " + json.dumps(r).encode() + b"\n\n" for r in responses)
    return not_an_event_stream_error(PROVIDER, content_type, text)


def _is_response(document: dict[str, Any]) -> bool:
    return bool({"candidates", "promptFeedback", "usageMetadata"} & document.keys())
