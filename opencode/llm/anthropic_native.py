"""Anthropic Messages streamed with httpx and parsed here, without LiteLLM (work in progress)."""

from collections.abc import AsyncIterator

import httpx

from opencode.llm.types import ModelRequest, StreamChunk


class AnthropicStreamClient:
    def __init__(
        self, http: httpx.AsyncClient | None = None, *, idle_timeout: float | None = 300.0
    ) -> None:
        self._http = http
        self.idle_timeout = idle_timeout

    async def aclose(self) -> None:
        pass

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        raise NotImplementedError
        yield
