"""Per-session todo lists (the ``todowrite``/``todoread`` tools and ``GET /session/{id}/todo``)."""

from dataclasses import dataclass
from typing import Any

from opencode.events.bus import EventBus
from opencode.storage.base import Store


class TodoService:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return await self._store.get_todos(session_id)

    async def write(self, session_id: str, todos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        await self._store.set_todos(session_id, todos)
        self._bus.publish("todo.updated", session_id=session_id, todos=todos)
        return todos

    def for_session(self, session_id: str) -> "SessionTodos":
        return SessionTodos(self, session_id)


@dataclass(frozen=True)
class SessionTodos:
    """The ``TodoList`` a tool sees: one session's list."""

    service: TodoService
    session_id: str

    async def read(self) -> list[dict[str, Any]]:
        return await self.service.read(self.session_id)

    async def write(self, todos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self.service.write(self.session_id, todos)
