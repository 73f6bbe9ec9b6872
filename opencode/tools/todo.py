"""``todowrite`` and ``todoread``: the session's task list, kept by the service layer.

The model plans multi-step work here; clients watch the list change. The tools only validate
and format; storage and change events live behind ``ctx.todos`` (the ``TodoList`` protocol).
"""

import json
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from opencode.tools.base import TodoList, Tool, ToolContext, ToolError

TodoStatus = Literal["pending", "in_progress", "completed", "cancelled"]
TodoPriority = Literal["high", "medium", "low"]

TODOWRITE_DESCRIPTION = """\
Create or update the task list for the current session. Each call replaces the whole list, so \
always send every todo, not only the changed ones.

Use it proactively:
- for work that needs three or more distinct steps, or careful planning;
- when the user gives several tasks at once, or asks for a todo list;
- when new instructions arrive: capture them as todos;
- while working: mark a todo in_progress before you start it, and completed as soon as it is \
done (do not batch completions); add follow-up todos you discover on the way.

Skip it for a single trivial task or a purely conversational request.

Rules:
- Keep exactly one todo in_progress while you are working.
- Mark a todo completed only when it is fully done; if it is blocked, keep it in_progress and \
add a todo for the blocker.
- Use cancelled for todos that are no longer relevant.
- Keep content short and actionable; give each todo a stable id."""

TODOREAD_DESCRIPTION = """\
Read the current task list of this session (a JSON array; "[]" when there is none). Use it to \
check what is left before you continue or finish."""


class TodoItem(BaseModel):
    id: str = Field(description="Stable unique identifier of the todo, e.g. '1' or 'tests'.")
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="Brief, actionable description of the task."
    )
    status: TodoStatus = Field(
        description="pending (not started), in_progress (working on it now; only one at a "
        "time), completed (done), cancelled (no longer needed)."
    )
    priority: TodoPriority = Field("medium", description="Priority of the task.")


class TodoWriteParams(BaseModel):
    todos: list[TodoItem] = Field(description="The complete, updated todo list.")

    @field_validator("todos")
    @classmethod
    def _unique_ids(cls, todos: list[TodoItem]) -> list[TodoItem]:
        counts = Counter(todo.id for todo in todos)
        duplicates = sorted(todo_id for todo_id, n in counts.items() if n > 1)
        if duplicates:
            raise ValueError(f"todo ids must be unique; repeated: {', '.join(duplicates)}")
        return todos


class TodoReadParams(BaseModel):
    pass


class TodoWrite(Tool):
    name = "todowrite"
    description = TODOWRITE_DESCRIPTION
    Params = TodoWriteParams

    async def run(self, params: BaseModel, ctx: ToolContext) -> str:
        assert isinstance(params, TodoWriteParams)
        todos = await _todo_list(ctx).write([todo.model_dump() for todo in params.todos])
        open_count = sum(1 for todo in todos if todo.get("status") != "completed")
        return f"{open_count} todos not completed.\n{_to_json(todos)}"


class TodoRead(Tool):
    name = "todoread"
    description = TODOREAD_DESCRIPTION
    Params = TodoReadParams

    async def run(self, params: BaseModel, ctx: ToolContext) -> str:
        return _to_json(await _todo_list(ctx).read())


def _todo_list(ctx: ToolContext) -> TodoList:
    if ctx.todos is None:
        raise ToolError("The todo list is not available in this session.")
    return ctx.todos


def _to_json(todos: list[dict[str, Any]]) -> str:
    return json.dumps(todos, indent=2, ensure_ascii=False)
