"""Server-sent events read from the raw reads of a response body, for the native clients.

Each ``data:`` line is one event's payload (OpenAI-compatible servers never split one over
several ``data:`` lines); other fields (``event:``, ``id:``), ``:`` keep-alive comments and the
blank lines between events are skipped, and so is the ``[DONE]`` sentinel.
"""

from collections.abc import AsyncIterable, AsyncIterator

from opencode.llm.errors import line_too_long_error


class EventLines:
    """The lines of an event stream, from the reads of its body, in time linear in its size: a
    line that arrives over many reads is joined once, when its end arrives (joining at every
    read would cost time quadratic in its length). A line longer than ``max_line`` bytes fails
    the stream as soon as that much of it is held, so it is never joined at all."""

    __slots__ = ("_held", "_held_size", "max_line", "provider")

    def __init__(self, provider: str, max_line: int) -> None:
        self.provider = provider
        self.max_line = max_line
        self._held: list[bytes] = []  # the start of a line whose end has not arrived
        self._held_size = 0

    def feed(self, read: bytes) -> list[bytes]:
        """The lines this read completes (with their ``\\r``, if the server sent CRLF)."""
        lines = read.split(b"\n")
        tail = lines.pop()
        if lines and self._held:
            lines[0] = b"".join([*self._held, lines[0]])
            self._held.clear()
            self._held_size = 0
        if tail:
            self._held.append(tail)
            self._held_size += len(tail)
        if self._held_size > self.max_line or (lines and max(map(len, lines)) > self.max_line):
            raise line_too_long_error(self.provider, self.max_line)
        return lines

    def end(self) -> bytes:
        """The last line, which the body ended without a newline after."""
        rest = b"".join(self._held)
        self._held.clear()
        self._held_size = 0
        return rest


def data_payload(line: bytes) -> bytes | None:
    """The payload of a ``data:`` line; None for any other line and for ``[DONE]``."""
    if not line.startswith(b"data:"):
        return None
    payload = line[5:].strip()
    return None if payload == b"[DONE]" else payload


async def data_payloads(
    reads: AsyncIterable[bytes], provider: str, max_line: int
) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of an event stream (``[DONE]`` left out), from its body's reads."""
    lines = EventLines(provider, max_line)
    async for read in reads:
        for line in lines.feed(read):
            if (payload := data_payload(line)) is not None:
                yield payload
    if (payload := data_payload(lines.end())) is not None:
        yield payload
