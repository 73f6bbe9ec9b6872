import json
from typing import Any

import pytest

from opencode.llm.types import ToolCall
from opencode.tools.base import ToolContext
from opencode.tools.registry import ToolRegistry
from opencode.tools.todo import TODOREAD_DESCRIPTION, TODOWRITE_DESCRIPTION, TodoRead, TodoWrite


class MemoryTodos:
    """In-memory ``TodoList``: what the session service does, minus storage and events."""

    def __init__(self, todos: list[dict[str, Any]] | None = None) -> None:
        self.todos = list(todos or [])
        self.writes = 0

    async def read(self) -> list[dict[str, Any]]:
        return list(self.todos)

    async def write(self, todos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.writes += 1
        self.todos = list(todos)
        return list(self.todos)


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register(TodoWrite())
    registry.register(TodoRead())
    return registry


def context(todos: MemoryTodos | None) -> ToolContext:
    return ToolContext(session_id="ses_1", message_id="msg_1", call_id="call_1", todos=todos)


def call(name: str, arguments: Any) -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id="call_1", name=name, arguments=text)


PLAN = [
    {"id": "1", "content": "Write the parser", "status": "completed", "priority": "high"},
    {"id": "2", "content": "Test the parser", "status": "in_progress"},
    {"id": "3", "content": "Document it", "status": "pending", "priority": "low"},
]


async def test_todowrite_replaces_the_list_and_reports_open_todos(registry: ToolRegistry):
    todos = MemoryTodos([{"id": "old", "content": "x", "status": "pending", "priority": "low"}])

    result = await registry.execute(call("todowrite", {"todos": PLAN}), context(todos))

    assert not result.is_error
    assert todos.todos == [
        {"id": "1", "content": "Write the parser", "status": "completed", "priority": "high"},
        {"id": "2", "content": "Test the parser", "status": "in_progress", "priority": "medium"},
        {"id": "3", "content": "Document it", "status": "pending", "priority": "low"},
    ]
    first_line, listing = result.text.split("\n", 1)
    assert first_line == "2 todos not completed."
    assert json.loads(listing) == todos.todos


async def test_todowrite_strips_content_and_rejects_blank_content(registry: ToolRegistry):
    todos = MemoryTodos()
    item = {"id": "1", "content": "  Do it  ", "status": "pending"}
    await registry.execute(call("todowrite", {"todos": [item]}), context(todos))
    assert todos.todos[0]["content"] == "Do it"

    blank = {"id": "1", "content": "   ", "status": "pending"}
    result = await registry.execute(call("todowrite", {"todos": [blank]}), context(todos))
    assert result.is_error
    assert "todos[0].content: String should have at least 1 character" in result.text
    assert todos.writes == 1


async def test_todowrite_rejects_bad_status_and_duplicate_ids(registry: ToolRegistry):
    todos = MemoryTodos()
    bad_status = {"todos": [{"id": "1", "content": "a", "status": "done"}]}
    result = await registry.execute(call("todowrite", bad_status), context(todos))
    assert result.is_error
    assert "todos[0].status: Input should be 'pending', 'in_progress'" in result.text

    twice = {"id": "1", "content": "a", "status": "pending"}
    result = await registry.execute(call("todowrite", {"todos": [twice, twice]}), context(todos))
    assert result.is_error
    assert "todo ids must be unique; repeated: 1" in result.text
    assert todos.writes == 0


async def test_todowrite_accepts_an_empty_list(registry: ToolRegistry):
    todos = MemoryTodos(PLAN)
    result = await registry.execute(call("todowrite", {"todos": []}), context(todos))
    assert result.text == "0 todos not completed.\n[]"
    assert todos.todos == []


async def test_todoread_returns_the_list_as_json(registry: ToolRegistry):
    todos = MemoryTodos()
    empty = await registry.execute(call("todoread", ""), context(todos))
    assert (empty.text, empty.is_error) == ("[]", False)

    await registry.execute(call("todowrite", {"todos": PLAN}), context(todos))
    result = await registry.execute(call("todoread", "{}"), context(todos))
    assert json.loads(result.text) == todos.todos


@pytest.mark.parametrize(("name", "arguments"), [("todoread", {}), ("todowrite", {"todos": []})])
async def test_todo_tools_need_a_todo_list(registry: ToolRegistry, name: str, arguments: Any):
    result = await registry.execute(call(name, arguments), context(None))
    assert result.is_error
    assert result.text == "The todo list is not available in this session."


def test_the_model_receives_the_todo_rules_and_the_statuses_they_name(registry: ToolRegistry):
    [write, read] = registry.specs(registry.select(["todowrite", "todoread"]))
    assert (write.description, read.description) == (TODOWRITE_DESCRIPTION, TODOREAD_DESCRIPTION)
    item = write.parameters["properties"]["todos"]["items"]
    assert item["properties"]["status"]["enum"] == [
        "pending",
        "in_progress",
        "completed",
        "cancelled",
    ]
    assert item["required"] == ["id", "content", "status"]
