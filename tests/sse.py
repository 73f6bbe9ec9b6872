"""A small SSE reader for tests: frames as (event, id, data) plus keep-alive comments."""

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)

    @property
    def type(self) -> str | None:
        return self.data.get("type") if isinstance(self.data, dict) else None


class SSEParser:
    """Feed lines (as ``httpx.Response.aiter_lines`` gives them); get complete frames back."""

    def __init__(self) -> None:
        self._current = Frame()
        self._data: list[str] = []
        self.comments: list[str] = []

    def feed(self, line: str) -> Frame | None:
        if line == "":
            if not self._data and self._current.event is None:
                return None
            frame = self._current
            frame.data = json.loads("\n".join(self._data)) if self._data else None
            self._current, self._data = Frame(), []
            return frame
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._current.event = value
        elif name == "id":
            self._current.id = value
        return None


async def collect(response, *, until: set[str] | None = None) -> list[Frame]:
    """Read frames until the stream ends (or a frame whose type is in ``until``)."""
    parser, frames = SSEParser(), []
    async for line in response.aiter_lines():
        frame = parser.feed(line)
        if frame is not None:
            frames.append(frame)
            if until and frame.type in until:
                break
    return frames
