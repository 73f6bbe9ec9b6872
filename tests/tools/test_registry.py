import asyncio
import copy
import json
import logging
import re
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field

from opencode.llm.types import ToolCall
from opencode.tools.base import Tool, ToolContext
from opencode.tools.registry import ToolRegistry, ToolResult, default_registry, provider_schema
from opencode.tools.todo import TodoRead
from tests.tools.test_question import GatedAsker, ScriptedAsker
from tests.tools.test_todo import MemoryTodos


class BrokenTodos(MemoryTodos):
    """A todo store whose backend fails the way a bug or a lost connection would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    async def read(self) -> list[dict[str, Any]]:
        raise self.error


def context(todos: Any = None, questions: Any = None) -> ToolContext:
    return ToolContext("ses_1", "msg_1", "call_1", todos=todos, questions=questions)


def call(name: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(id="call_1", name=name, arguments=arguments)


@pytest.fixture
def registry() -> ToolRegistry:
    return default_registry()


# ---- registration, selection, specs ----


def test_default_registry_has_the_builtin_tools(registry: ToolRegistry):
    assert registry.names() == ["todowrite", "todoread", "question", "webfetch", "websearch"]
    assert isinstance(registry.get("todoread"), TodoRead)
    assert registry.get("bash") is None


def test_registering_a_name_twice_fails(registry: ToolRegistry):
    with pytest.raises(ValueError, match="'todoread' is already registered"):
        registry.register(TodoRead())


def test_select_keeps_order_and_none_selects_all(registry: ToolRegistry):
    assert [t.name for t in registry.select(None)] == registry.names()
    assert [t.name for t in registry.select(["question", "todoread"])] == ["question", "todoread"]
    assert registry.select([]) == []


def test_select_names_unknown_and_valid_tools(registry: ToolRegistry):
    with pytest.raises(ValueError) as info:
        registry.select(["todoread", "bash", "grep"])
    assert str(info.value) == (
        "Unknown tools: bash, grep. Valid tools: todowrite, todoread, question, webfetch, websearch."
    )


def test_specs_are_clean_json_schemas(registry: ToolRegistry):
    specs = {spec.name: spec for spec in registry.specs(registry.select(None))}
    assert set(specs) == {"todowrite", "todoread", "question", "webfetch", "websearch"}
    for spec in specs.values():
        text = json.dumps(spec.parameters)
        assert "$ref" not in text and "$defs" not in text and '"title"' not in text
        assert spec.parameters["type"] == "object"
        assert spec.description
        jsonschema.Draft202012Validator.check_schema(spec.parameters)

    todo = specs["todowrite"].parameters
    assert todo["required"] == ["todos"]
    item = todo["properties"]["todos"]["items"]
    assert item["required"] == ["id", "content", "status"]
    statuses = ["pending", "in_progress", "completed", "cancelled"]
    assert item["properties"]["status"]["enum"] == statuses
    assert all("description" in field for field in item["properties"].values())

    question = specs["question"].parameters["properties"]["questions"]
    assert (question["minItems"], question["maxItems"]) == (1, 5)
    assert question["items"]["required"] == ["question", "header"]
    option = question["items"]["properties"]["options"]["items"]
    assert option["required"] == ["label"]

    assert specs["todoread"].parameters == {"properties": {}, "type": "object"}


def test_spec_schemas_accept_what_the_tools_accept(registry: ToolRegistry):
    [question] = registry.specs(registry.select(["question"]))
    payload = {"questions": [{"question": "Why?", "header": "Why", "options": [{"label": "A"}]}]}
    jsonschema.validate(payload, question.parameters)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"questions": [{"question": "Why?"}]}, question.parameters)


class Leaf(BaseModel):
    value: int = Field(description="A value.")


class Branch(BaseModel):
    leaf: Leaf = Field(description="The single leaf.")
    maybe: Leaf | None = None


class Loop(BaseModel):
    children: list["Loop"] = []


def test_provider_schema_inlines_refs_and_keeps_sibling_keys():
    raw = Branch.model_json_schema()
    before = copy.deepcopy(raw)
    schema = provider_schema(raw)
    assert schema["properties"]["leaf"] == {
        "description": "The single leaf.",
        "properties": {"value": {"description": "A value.", "type": "integer"}},
        "required": ["value"],
        "type": "object",
    }
    assert schema["properties"]["maybe"]["anyOf"][0]["properties"]["value"]["type"] == "integer"
    assert raw == before  # the input is not modified


def test_provider_schema_keeps_properties_named_title():
    class Page(BaseModel):
        title: str

    assert provider_schema(Page.model_json_schema())["properties"] == {"title": {"type": "string"}}


def test_provider_schema_refuses_recursive_models():
    with pytest.raises(ValueError, match="recursive schema 'Loop'"):
        provider_schema(Loop.model_json_schema())


# ---- execute: every way a call can go wrong comes back as an error result ----


async def test_unknown_tool_names_the_available_ones(registry: ToolRegistry):
    result = await registry.execute(call("bash"), context())
    assert result == ToolResult(
        "Tool 'bash' does not exist. Available tools: todowrite, todoread, question, webfetch, websearch.",
        is_error=True,
    )


async def test_tool_not_enabled_for_the_run(registry: ToolRegistry):
    result = await registry.execute(call("question"), context(), allowed={"todoread"})
    assert result == ToolResult(
        "Tool 'question' is not enabled for this run. Available tools: todoread.", is_error=True
    )
    nothing = await registry.execute(call("todoread"), context(MemoryTodos()), allowed=())
    assert nothing.text == "Tool 'todoread' is not enabled for this run. Available tools: none."


async def test_allowed_tool_runs(registry: ToolRegistry):
    result = await registry.execute(call("todoread"), context(MemoryTodos()), allowed=["todoread"])
    assert result == ToolResult("[]")


@pytest.mark.parametrize("arguments", ["", "   ", "{}"])
async def test_empty_arguments_count_as_an_empty_object(registry: ToolRegistry, arguments: str):
    result = await registry.execute(call("todoread", arguments), context(MemoryTodos()))
    assert result == ToolResult("[]")


async def test_arguments_that_are_not_json(registry: ToolRegistry):
    result = await registry.execute(call("todowrite", '{"todos": ['), context(MemoryTodos()))
    assert result.is_error
    assert result.text.startswith("Arguments for tool todowrite are not valid JSON: Expecting")
    assert result.text.endswith("Send a single JSON object.")


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [("[]", "an array"), ('"todos"', "a string"), ("3", "a number"), ("null", "null")],
)
async def test_arguments_that_are_not_an_object(registry: ToolRegistry, arguments: str, kind: str):
    result = await registry.execute(call("todowrite", arguments), context(MemoryTodos()))
    assert result == ToolResult(
        f"Arguments for tool todowrite must be a JSON object, got {kind}.", is_error=True
    )


async def test_validation_errors_are_compact_and_readable(registry: ToolRegistry):
    arguments = json.dumps({"todos": [{"id": 1, "status": "done"}, "nope"]})
    result = await registry.execute(call("todowrite", arguments), context(MemoryTodos()))
    assert result.is_error
    assert result.text == (
        "Invalid arguments for tool todowrite:\n"
        "- todos[0].id: Input should be a valid string\n"
        "- todos[0].content: Field required\n"
        "- todos[0].status: Input should be 'pending', 'in_progress', 'completed' or 'cancelled'\n"
        "- todos[1]: Input should be a valid dictionary or instance of TodoItem"
    )
    assert "http" not in result.text


async def test_missing_top_level_field_and_long_error_lists(registry: ToolRegistry):
    result = await registry.execute(call("todowrite", "{}"), context(MemoryTodos()))
    assert result.text == "Invalid arguments for tool todowrite:\n- todos: Field required"

    many = json.dumps({"todos": [{}] * 6})  # 3 missing fields each: 10 shown, 8 hidden
    result = await registry.execute(call("todowrite", many), context(MemoryTodos()))
    lines = result.text.splitlines()
    assert len(lines) == 12
    assert lines[-1] == "- ... and 8 more"


async def test_tool_error_message_goes_back(registry: ToolRegistry):
    result = await registry.execute(call("todoread"), context(todos=None))
    assert result == ToolResult("The todo list is not available in this session.", is_error=True)


async def test_unexpected_exception_is_reported_and_logged(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
):
    todos = BrokenTodos(RuntimeError("database is locked"))
    with caplog.at_level(logging.ERROR, logger="opencode.tools.registry"):
        result = await registry.execute(call("todoread"), context(todos))
    # the model (and the client watching) learn that it failed, not the server's internals
    assert result.is_error and "database is locked" not in result.text
    reference = re.search(r"internal error \(id (err_\w+)\)", result.text).group(1)
    assert result.text.startswith("Tool todoread failed")
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "todoread" in record.getMessage() and reference in record.getMessage()


async def test_tool_output_is_scrubbed_of_unsafe_text_and_credentials(registry: ToolRegistry):
    class NoParams(BaseModel):
        pass

    class Echo(Tool):
        name = "echo"
        description = "echo"
        Params = NoParams

        async def run(self, params, ctx):
            return "half \ud83d and nul \x00 with Authorization: Bearer sk-proj-abcdefghijklmnop12"

    registry.register(Echo())
    result = await registry.execute(call("echo"), context(None))
    assert result.text == "half \ufffd and nul  with Authorization: Bearer [redacted]"


async def test_cancellation_raised_inside_a_tool_propagates(registry: ToolRegistry):
    todos = BrokenTodos(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await registry.execute(call("todoread"), context(todos))


async def test_cancelling_execute_propagates(registry: ToolRegistry):
    asker = GatedAsker()
    arguments = json.dumps({"questions": [{"question": "Go?", "header": "Go"}]})
    task = asyncio.create_task(registry.execute(call("question", arguments), context(None, asker)))
    await asker.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_concurrent_executes_are_independent(registry: ToolRegistry):
    sessions = [MemoryTodos() for _ in range(20)]

    def write(i: int) -> ToolCall:
        todo = {"id": str(i), "content": f"task {i}", "status": "pending"}
        return call("todowrite", json.dumps({"todos": [todo]}))

    asker = ScriptedAsker([["yes"]])
    question = json.dumps({"questions": [{"question": "Go?", "header": "Go"}]})
    results = await asyncio.gather(
        *(registry.execute(write(i), context(todos)) for i, todos in enumerate(sessions)),
        registry.execute(call("question", question), context(None, asker)),
        registry.execute(call("nope"), context()),
    )

    assert [todos.todos[0]["content"] for todos in sessions] == [f"task {i}" for i in range(20)]
    assert all(r.text.startswith("1 todos not completed.") for r in results[:20])
    assert results[20].text.startswith('User has answered your questions: "Go?"="yes"')
    assert results[21].is_error
