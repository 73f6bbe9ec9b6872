"""``LiteLLMClient``, imported on first use, in a worker thread, so the server starts without it.

``import litellm`` takes ~2 s of CPU and ~150 MiB; with the native clients on (OpenAI,
Anthropic, Gemini: ``OPENCODE_NATIVE_*``) a server may never need it. ``LazyLiteLLMClient`` is
the router's client for every other request: the first one imports ``litellm_adapter`` (and
with it LiteLLM) in a thread, off the event loop, which keeps serving meanwhile; requests that
arrive during the import wait for that one import (single flight, also across event loops and
client instances: the import is the process's). ``warm()`` starts the import in the
background, for a server that is going to need LiteLLM (``lifecycle.build_services``).

Once imported, ``stream`` hands out ``LiteLLMClient.stream`` itself, so no layer is added per
chunk. A failed import fails the requests that waited for it (a ``ProviderError``, not
retryable) and is tried again by the next one.
"""

import asyncio
import concurrent.futures
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from opencode.llm.types import ModelRequest, ProviderError, StreamChunk

log = logging.getLogger(__name__)

_lock = threading.Lock()
_import: "concurrent.futures.Future[type[Any]] | None" = None


def start_import() -> "concurrent.futures.Future[type[Any]]":
    """The one import of ``litellm_adapter`` in this process: started by the first caller in a
    daemon thread; every caller gets the same future (resolving to ``LiteLLMClient``)."""
    global _import
    with _lock:
        if _import is None or (_import.done() and _import.exception() is not None):
            _import = concurrent.futures.Future()
            threading.Thread(
                target=_run_import, args=(_import,), name="litellm-import", daemon=True
            ).start()
        return _import


def _run_import(future: "concurrent.futures.Future[type[Any]]") -> None:
    future.set_running_or_notify_cancel()  # from now on no waiter can cancel it for the others
    started = time.perf_counter()
    try:
        from opencode.llm.litellm_adapter import LiteLLMClient  # imports litellm
    except BaseException as exc:  # an ImportError, or anything LiteLLM's import raised
        log.exception("importing LiteLLM failed")
        future.set_exception(exc)
        return
    # LiteLLM's import leaves ~340k objects tracked by the garbage collector (its cost map,
    # pydantic models, provider configs) that live as long as the process; every full
    # collection would walk them all, a ~200 ms pause of every stream on the loop each time
    # (the same reason the lifespan freezes what start-up made). Frozen, they are out of its
    # reach. Only the young generations are collected first: a full collection now would be
    # that very pause (the import's garbage is mostly young; what else is frozen with it is
    # only cyclic garbage of the moment, which refcounting never frees anyway).
    gc.collect(1)
    gc.freeze()
    log.info("LiteLLM imported in %.1f s (off the event loop)", time.perf_counter() - started)
    future.set_result(LiteLLMClient)


class LazyLiteLLMClient:
    """The ``ModelClient`` interface of ``litellm_adapter.LiteLLMClient`` (same arguments),
    without importing LiteLLM until a request needs it."""

    def __init__(self, *, idle_timeout: float | None = 300.0) -> None:
        self.idle_timeout = idle_timeout
        self._client: Any = None

    def warm(self) -> None:
        """Start importing LiteLLM in the background (returns at once)."""
        start_import()

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        if self._client is not None:
            return self._client.stream(request)
        return self._stream_after_import(request)

    async def aclose(self) -> None:
        """Nothing to close (``LiteLLMClient`` holds no resources of its own)."""

    async def client(self) -> Any:
        """The ``LiteLLMClient``, once the import (started now if need be) has finished. A
        waiter that is cancelled stops waiting; the import goes on for the others."""
        if self._client is None:
            future = start_import()
            try:
                client_class = await asyncio.shield(asyncio.wrap_future(future))
            except Exception as exc:
                message = f"LiteLLM could not be imported: {type(exc).__name__}: {exc}"
                raise ProviderError(message) from exc
            if self._client is None:
                self._client = client_class(idle_timeout=self.idle_timeout)
        return self._client

    async def _stream_after_import(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        client = await self.client()
        async with aclosing(client.stream(request)) as stream:
            async for chunk in stream:
                yield chunk
