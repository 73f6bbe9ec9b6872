"""How model calls are retried, and a retrying client per caller so each hears its own retries.

A run's retries belong in that run's message stream, a title's to its session: each caller
builds its client with its own ``on_retry`` instead of finding out whose call it was through
shared state.
"""

from dataclasses import dataclass

from opencode.llm.retry import OnRetry, RetryingClient
from opencode.llm.types import ModelClient


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3  # OPENCODE_MAX_RETRIES
    base_delay: float = 1.0  # OPENCODE_RETRY_BASE_DELAY
    max_delay: float = 30.0  # OPENCODE_RETRY_MAX_DELAY

    def client(self, models: ModelClient, on_retry: OnRetry | None = None) -> RetryingClient:
        return RetryingClient(
            models,
            max_retries=self.max_retries,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            on_retry=on_retry,
        )
