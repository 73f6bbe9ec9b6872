"""The HTTP side of a native streaming client: one POST whose body is read in a task of its own,
watched by one idle timer, handed to the client as raw reads.

Shared by the native OpenAI, Anthropic and Gemini clients (``openai_native``,
``anthropic_native``, ``gemini_native``); each parses the reads itself (``sse.EventLines``).

Why a task of its own: httpcore cleans up a cancelled read under an anyio shield that a native
``task.cancel()`` gets through, so a consumer cancelled twice would cut the cleanup short and
leave the socket open and its pool slot taken. The exchange task is cancelled once, by
``close``, which then waits its cleanup out.

Why one timer: an ``asyncio.timeout`` around every read costs a timer handle, a cancel scope and
a reschedule per chunk. The exchange notes the loop time of each read instead (one attribute
store), and a single ``call_at`` handle, re-armed only when it fires early, fails the stream
once the provider has sent nothing (headers, then body) for ``idle_timeout`` seconds. It counts
the provider's silence only: reads the consumer has not taken yet are not silence.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from opencode.llm.errors import media_type, stalled_stream_error, to_provider_error
from opencode.llm.types import ProviderError

MAX_WHOLE_BODY = 16 * 2**20  # a 200 that is not an event stream is read up to this size
# No read timeout: the idle timer bounds each wait for the body, which may stream for minutes.
HTTP_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0)
HTTP_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=60)

# What a 200 that is not an event stream amounts to: the reads of one, or the error it is.
WholeBody = Callable[[str, bytes], bytes | ProviderError]
# What a non-200 amounts to: its status, body and headers as a ProviderError.
ErrorBody = Callable[[httpx.Response, bytes], Exception]

# A response without any content-type is read as an event stream too: if it is not one, it ends
# without a finish reason, which fails the step all the same.
EVENT_STREAM_TYPES = frozenset({"text/event-stream", ""})

_END = object()


def new_http_client() -> httpx.AsyncClient:
    """The pooled client a native provider client keeps for its whole life: connections to the
    provider stay open between turns (a new TCP connection per turn cost ~1.5 ms)."""
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS)


class PooledClient:
    """What every native client shares: one pooled ``httpx.AsyncClient`` for its whole life, and
    the streamed POST of each step on it.

    Pass ``http`` to use a client you own (and close); without it one is created on first use
    and closed by ``aclose()``. ``idle_timeout`` bounds every wait on the provider (the response
    headers, then each read of the body), as in ``LiteLLMClient``; None waits forever.
    Closing the stream (``aclose``, or cancelling the consumer) closes the HTTP response at once.
    """

    # Each native client sets these (plain functions, as staticmethods).
    provider = "provider"  # its name in errors
    error_body: ErrorBody  # a non-200 as an exception
    whole_body: WholeBody  # a 200 that is not an event stream
    event_types = EVENT_STREAM_TYPES  # the content types of a stream (every provider's so far)

    def __init__(
        self, http: httpx.AsyncClient | None = None, *, idle_timeout: float | None = 300.0
    ) -> None:
        self._http = http
        self._owns_http = http is None
        self._opening: asyncio.Future[httpx.AsyncClient] | None = None
        self.idle_timeout = idle_timeout

    def warm(self) -> None:
        """Create the HTTP client now, in a thread. Creating one loads the CA bundle into a TLS
        context: 30-130 ms of CPU that, on the loop, would stall every stream at the first turn
        to this provider. The lifespan warms every native client just after start-up."""
        if self._http is None and self._opening is None:
            self._opening = asyncio.ensure_future(asyncio.to_thread(new_http_client))

    async def aclose(self) -> None:
        """Close the HTTP client this instance created (a client passed in is left open)."""
        if self._opening is not None:
            await asyncio.wait([self._opening])
            if not self._opening.cancelled() and self._opening.exception() is None:
                self._http = self._http or self._opening.result()
            self._opening = None
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def post(self, url: str, body: Any, headers: dict[str, str]) -> "HTTPStream":
        """The step's exchange: ``body`` POSTed as JSON to ``url``, its body streamed."""
        http = self._http or await self._opened()
        call = http.build_request("POST", url, json=body, headers=headers)
        return HTTPStream(
            http,
            call,
            provider=self.provider,
            idle_timeout=self.idle_timeout,
            error_body=self.error_body,
            whole_body=self.whole_body,
            event_types=self.event_types,
        )

    async def _opened(self) -> httpx.AsyncClient:
        self.warm()
        assert self._opening is not None
        opening = self._opening
        try:
            # shielded: a turn cancelled meanwhile leaves the client to the next one
            http = await asyncio.shield(opening)
        except Exception:
            if self._opening is opening:
                self._opening = None  # the next turn tries again
            raise
        self._http = self._http or http
        return self._http


class HTTPStream:
    """One streamed POST. ``reads()`` yields each read of the body; a failure (transport, status,
    a body that is not an event stream, the idle timer) comes out of it as a ``ProviderError``.
    Always ``await close()`` (in a ``finally``): it closes the response, and so the provider's
    stream, at once."""

    __slots__ = (
        "_error_body",
        "_event_types",
        "_idle",
        "_last",
        "_loop",
        "_pending",
        "_provider",
        "_stopped",
        "_task",
        "_timer",
        "_waiter",
        "_whole_body",
    )

    def __init__(
        self,
        http: httpx.AsyncClient,
        call: httpx.Request,
        *,
        provider: str,
        idle_timeout: float | None,
        error_body: ErrorBody,
        whole_body: WholeBody,
        event_types: frozenset[str] = frozenset({"text/event-stream", ""}),
    ) -> None:
        self._provider = provider
        self._idle = idle_timeout
        self._error_body = error_body
        self._whole_body = whole_body
        self._event_types = event_types
        self._loop = asyncio.get_running_loop()
        self._pending: deque[Any] = deque()  # reads, then _END or the exception that ended it
        self._waiter: asyncio.Future[None] | None = None
        self._stopped = False  # the task was cancelled: once only (see the module docstring)
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        if idle_timeout is not None:
            self._timer = self._loop.call_at(self._last + idle_timeout, self._on_timer)
        self._task = self._loop.create_task(self._exchange(http, call))

    async def reads(self) -> AsyncIterator[bytes]:
        """The body's reads, several at once joined into one when they queued up."""
        pending = self._pending
        while True:
            if not pending:
                self._waiter = self._loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            if len(pending) == 1 or not isinstance(pending[0], bytes):
                item = pending.popleft()
            else:
                pieces = []
                while pending and isinstance(pending[0], bytes):
                    pieces.append(pending.popleft())
                item = b"".join(pieces)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        """End the exchange now (closing its response, and so the provider's stream), and wait
        until it has, through any cancellation of our own (re-raised after)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._task
        self._stop()
        cancelled = False
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:
                cancelled = True
        # The transport closes its socket in a call_soon callback: let it run, so that the
        # provider sees the disconnect by the time our generator is closed.
        await asyncio.sleep(0)
        if cancelled:
            raise asyncio.CancelledError

    # ---- the exchange task ----

    def _stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._task.cancel()

    def _put(self, item: Any) -> None:
        self._pending.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, item: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._put(item)

    async def _exchange(self, http: httpx.AsyncClient, call: httpx.Request) -> None:
        try:
            response = await http.send(call, stream=True)
            self._last = self._loop.time()
            try:
                if response.status_code != 200:
                    raise self._error_body(response, await response.aread())
                content_type = media_type(response.headers.get("content-type"))
                if content_type not in self._event_types:
                    whole = self._whole_body(content_type, await _read_at_most(response))
                    if isinstance(whole, BaseException):
                        raise whole
                    self._put(whole)
                else:
                    async for read in response.aiter_bytes():  # to the end: reused connection
                        self._last = self._loop.time()
                        self._put(read)
            finally:
                await response.aclose()
        except asyncio.CancelledError:
            raise
        except ProviderError as exc:
            self._end(exc)
        except Exception as exc:
            error = to_provider_error(exc, self._provider)
            error.__cause__ = exc
            self._end(error)
        else:
            self._end(_END)

    def _on_timer(self) -> None:
        self._timer = None
        assert self._idle is not None
        due = self._last + self._idle
        if due > self._loop.time():
            self._timer = self._loop.call_at(due, self._on_timer)
            return
        self._stop()  # closes the response: the provider sees us hang up
        self._put(stalled_stream_error(self._provider, self._idle))


async def _read_at_most(response: httpx.Response) -> bytes:
    body = bytearray()
    async for read in response.aiter_bytes():
        body += read
        if len(body) > MAX_WHOLE_BODY:
            break
    return bytes(body)
