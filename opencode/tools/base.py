"""What a tool is: a name, a description, a pydantic parameters model, and an async ``run``.

Tools see the outside world only through ``ToolContext``, whose collaborators are protocols
implemented by the service layer (so tools never import storage or HTTP code).
"""

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel


class ToolError(Exception):
    """A failure the model can act on; its message goes back to the model as an error result."""


class TodoList(Protocol):
    async def read(self) -> list[dict[str, Any]]: ...

    async def write(self, todos: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


class QuestionAsker(Protocol):
    async def ask(self, call_id: str, questions: list[dict[str, Any]]) -> list[list[str]]:
        """Ask the user; return one list of answers per question.

        Raises ToolError when the user dismisses the question or it times out."""
        ...


@dataclass(frozen=True)
class ToolContext:
    session_id: str
    message_id: str
    call_id: str
    todos: TodoList | None = None
    questions: QuestionAsker | None = None


class Tool:
    """Subclass with ``name``, ``description``, ``Params`` and ``run``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    async def run(self, params: BaseModel, ctx: ToolContext) -> str:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        return self.Params.model_json_schema()
