"""Retrying a model step, but only while nothing has reached the user yet."""

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from opencode.llm.types import ModelClient, ModelRequest, ProviderError, StreamChunk

OnRetry = Callable[[int, ProviderError, float], None]


class RetryingClient:
    """A ``ModelClient`` that retries a retryable ``ProviderError`` raised before the step's
    first chunk. Once a chunk has been yielded the error is re-raised: that output is already
    on its way to the user, and a second attempt would duplicate it.

    The delay is the provider's ``retry_after`` when it sent one, else ``base_delay * 2**n``
    with jitter (each wait is 50-100% of that); both are capped at ``max_delay``. ``on_retry``
    hears ``(retry number from 1, error, delay)`` before each wait.
    """

    def __init__(
        self,
        inner: ModelClient,
        *,
        max_retries: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.inner = inner
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._on_retry = on_retry

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        retries = 0
        while True:
            started = False
            attempt = self.inner.stream(request)
            try:
                async for chunk in attempt:
                    started = True
                    yield chunk
                return
            except ProviderError as error:
                if started or not error.retryable or retries >= self.max_retries:
                    raise
                failure = error
            finally:
                await _aclose(attempt)
            delay = self.delay(retries, failure)
            retries += 1
            if self._on_retry is not None:
                self._on_retry(retries, failure, delay)
            await self._sleep(delay)

    def delay(self, retries_so_far: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_delay)
        backoff = min(self.base_delay * 2**retries_so_far, self.max_delay)
        return backoff * random.uniform(0.5, 1.0)


async def _aclose(stream: AsyncIterator[StreamChunk]) -> None:
    """Close the inner step now (its ``finally`` closes the provider stream), not at GC."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
