"""Any LiteLLM or transport failure as one short, human-readable ``ProviderError``.

Retryable exactly when a second attempt can help: 408, 409, 429, 5xx, connection failures,
timeouts, stalled streams, and streams that were cut short or garbled on the way (a 200 that is
not an event stream, a line that is not JSON, no finish reason). The provider's own
``Retry-After`` travels along when it sent one. Not retryable: a stream past the line or output
caps, which a second attempt would most likely repeat.
"""

import asyncio
import email.utils
import json
import re
import sys
import time
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import httpx

from opencode.llm.types import ProviderError

T = TypeVar("T")

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,  # LiteLLM's aiohttp transport re-raises aiohttp errors as these
    ConnectionError,
    TimeoutError,
)
_TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, TimeoutError)
_RETRYABLE_STATUS = {408, 409, 429}
# How providers say the prompt is longer than the window (OpenAI and compatible servers,
# Anthropic, Gemini, vLLM/llama.cpp); LiteLLM's ContextWindowExceededError only covers some.
_OVERFLOW = re.compile(
    r"context.length|context.window|maximum context|prompt is too long|input token count"
    r".{0,40}exceeds|too many (input )?tokens|exceeds the (model's )?max",
    re.IGNORECASE,
)


class _LiteLLMErrors:
    """LiteLLM's exception classes, read from the module only once it has been imported: LiteLLM
    is loaded only for requests that go through it (``lazy_litellm``), and an exception of its
    classes cannot exist before. Without it, each is an empty tuple (``isinstance`` is False)."""

    def __init__(self) -> None:
        litellm = sys.modules.get("litellm")  # may be half imported (by another thread): getattr
        self.connection = _classes(litellm, "APIConnectionError")
        self.timeout = _classes(litellm, "Timeout")
        self.context_window = _classes(litellm, "ContextWindowExceededError")


def _classes(module: Any, name: str) -> tuple[type[BaseException], ...]:
    value = getattr(module, name, None) if module is not None else None
    return (value,) if isinstance(value, type) and issubclass(value, BaseException) else ()


def to_provider_error(exc: BaseException, provider: str) -> ProviderError:
    """A short, human-readable ProviderError for any LiteLLM / transport failure: retryable
    for 408, 409, 429, 5xx, connection failures and timeouts."""
    lite = _LiteLLMErrors()
    cause = _unwrap(exc)
    status = getattr(cause, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = _provider_message(cause)
    if status is None or status >= 500:  # LiteLLM labels some connection failures 500
        if (line := _invalid_json_line(exc, cause, lite)) is not None:
            return invalid_json_error(provider, line)
        transports = (*lite.connection, *lite.timeout, *_TRANSPORT_ERRORS)
        transport = [e for e in _chain(exc) if isinstance(e, transports)]
        if transport:
            timeouts = (*lite.timeout, *_TIMEOUTS)
            what = "timed out" if any(isinstance(e, timeouts) for e in transport) else "failed"
            return ProviderError(f"{provider}: connection {what}: {detail}", retryable=True)
    retryable = status is not None and (status in _RETRYABLE_STATUS or status >= 500)
    label = f"{provider} error {status}" if status else f"{provider} error"
    overflow = isinstance(cause, lite.context_window) or (
        status in (400, 413, 422) and _OVERFLOW.search(detail) is not None
    )
    return ProviderError(
        f"{label}: {detail}",
        status_code=status,
        retryable=retryable,
        retry_after=_retry_after(exc),
        context_overflow=overflow,
    )


async def within_idle(provider_call: Awaitable[T], idle_timeout: float | None, provider: str) -> T:
    """Await the provider within ``idle_timeout`` (None waits forever); any failure comes out
    as a ``ProviderError``, a wait that runs out as a stalled stream. One deadline per wait
    rather than one rescheduled across the stream: a deadline held across ``yield`` would count
    the consumer's time as the provider's, and on expiry cancel whichever task was running."""
    idle = asyncio.timeout(idle_timeout)
    try:
        async with idle:
            return await provider_call
    except Exception as exc:
        if idle.expired() and idle_timeout is not None:
            raise stalled_stream_error(provider, idle_timeout) from exc
        raise to_provider_error(exc, provider) from exc


def stalled_stream_error(provider: str, idle_timeout: float) -> ProviderError:
    """The provider kept the connection open but sent nothing for ``idle_timeout`` seconds."""
    message = f"{provider}: no data for {idle_timeout:g} s; the stream stalled"
    return ProviderError(message, retryable=True)


# ---- streams that are not what a provider sends ----


def unfinished_stream_error(provider: str) -> ProviderError:
    """The stream ended (cleanly, or with nothing in it) before the provider's finish reason."""
    return ProviderError(f"{provider}: the stream ended before the model finished", retryable=True)


def not_an_event_stream_error(provider: str, content_type: str, body: str = "") -> ProviderError:
    """A 200 that is something else (a proxy's HTML login page, a JSON document)."""
    snippet = " ".join(body.split())[:200]
    detail = f": {snippet}" if snippet else ""
    message = f"{provider}: expected an event stream, got {content_type or 'no content-type'}"
    return ProviderError(message + detail, retryable=True)


def invalid_json_error(provider: str, line: str | None = None) -> ProviderError:
    detail = f": {line[:200]}" if line else ""
    message = f"{provider}: the stream sent a line that is not JSON{detail}"
    return ProviderError(message, retryable=True)


def line_too_long_error(provider: str, limit: int) -> ProviderError:
    message = f"{provider}: the event stream sent a line longer than {_size(limit)}"
    return ProviderError(message)


def output_cap_error(provider: str, limit: int) -> ProviderError:
    """One step streamed more than ``ModelRequest.max_output_chars``: a model (or a gateway)
    repeating itself without end would otherwise fill memory and the stored turn."""
    return ProviderError(
        f"{provider}: the model's output passed {limit} characters in one step "
        "(OPENCODE_MAX_STEP_OUTPUT_CHARS); the step was stopped"
    )


def media_type(content_type: str | None) -> str:
    """``text/event-stream`` from ``Text/Event-Stream; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _size(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"


def _invalid_json_line(
    exc: BaseException, cause: BaseException, lite: _LiteLLMErrors
) -> str | None:
    """OpenAI through LiteLLM (1.106): the openai SDK's ``json.loads`` of a ``data:`` line that
    is not JSON raises ``JSONDecodeError``, which LiteLLM re-raises as an APIConnectionError
    (status 500, "connection failed"). The line is the decode error's ``doc``. Only without a
    real HTTP status: an error body that is not JSON has one, and is quoted as such."""
    if getattr(cause, "status_code", None) not in (None, 500):
        return None
    if not isinstance(cause, (*lite.connection, json.JSONDecodeError)):
        return None
    decode = next((e for e in _chain(exc) if isinstance(e, json.JSONDecodeError)), None)
    return None if decode is None else decode.doc


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
