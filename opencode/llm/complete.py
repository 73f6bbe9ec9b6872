"""One model call read to the end, for services that want the answer, not the stream."""

from opencode.llm.types import ModelClient, ModelRequest, StepOutput


async def complete(client: ModelClient, request: ModelRequest) -> StepOutput | None:
    """The call's StepOutput (None if the stream ended without one). The provider stream is
    closed however the call ends; ``ProviderError`` propagates."""
    output: StepOutput | None = None
    stream = client.stream(request)
    try:
        async for chunk in stream:
            if isinstance(chunk, StepOutput):
                output = chunk
    finally:
        await stream.aclose()
    return output
