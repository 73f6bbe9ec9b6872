"""One ``ModelClient`` in front of several: each request goes to its provider's client."""

from collections.abc import AsyncIterator, Mapping

from opencode.llm.types import ModelClient, ModelRequest, StreamChunk


class ProviderRouter:
    """Picks the client by the ``provider/`` prefix of ``request.model`` (``openai`` for
    ``openai/gpt-4o-mini``); providers without a client of their own go to ``default``.

    ``stream`` returns the chosen client's stream itself, so closing it closes the provider
    stream, and no layer is added per chunk. (The default, ``lazy_litellm.LazyLiteLLMClient``,
    adds one only to the streams that had to wait for LiteLLM's import.)"""

    def __init__(self, default: ModelClient, by_provider: Mapping[str, ModelClient]) -> None:
        self.default = default
        self.by_provider = dict(by_provider)

    def client_for(self, model: str) -> ModelClient:
        provider, _, _ = model.partition("/")
        return self.by_provider.get(provider, self.default)

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        return self.client_for(request.model).stream(request)

    async def aclose(self) -> None:
        """Close every client that holds resources (an ``aclose`` method), each once."""
        clients = {id(client): client for client in (self.default, *self.by_provider.values())}
        for client in clients.values():
            aclose = getattr(client, "aclose", None)
            if aclose is not None:
                await aclose()
