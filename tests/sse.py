"""A small SSE reader for tests: frames as (event, id, data) plus keep-alive comments."""

import json
from collections.abc import Callable
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


class FrameReader:
    """Reads one response's frames in instalments: ``until`` a condition, then ``rest``."""

    def __init__(self, response) -> None:
        self.parser = SSEParser()
        self.frames: list[Frame] = []
        self._lines = response.aiter_lines()

    async def until(self, done: Callable[[list[Frame]], bool]) -> list[Frame]:
        async for line in self._lines:
            frame = self.parser.feed(line)
            if frame is not None:
                self.frames.append(frame)
                if done(self.frames):
                    break
        return self.frames

    async def until_type(self, *types: str) -> list[Frame]:
        """Read until a frame whose type is one of ``types``."""
        return await self.until(lambda frames: frames[-1].type in types)

    async def rest(self) -> list[Frame]:
        return await self.until(lambda frames: False)

    def text(self, kind: str = "text") -> str:
        return "".join(f.data["text"] for f in self.frames if f.type == kind)


async def collect(response, *, until: set[str] | None = None) -> list[Frame]:
    """Read frames until the stream ends (or a frame whose type is in ``until``)."""
    reader = FrameReader(response)
    return await reader.until(lambda frames: bool(until) and frames[-1].type in until)
