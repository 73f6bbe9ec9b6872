"""The tools the agent can call, registered explicitly, and the one place that runs them.

``execute`` turns every problem the model can fix (unknown tool, bad JSON, invalid arguments,
``ToolError``, even an unexpected exception inside a tool) into an error ``ToolResult`` that
goes back to the model; only cancellation propagates.
"""

import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from opencode.core.ids import new_id
from opencode.core.redact import redact
from opencode.core.settings import Settings
from opencode.core.text import scrub
from opencode.llm.types import ToolCall, ToolSpec
from opencode.tools.base import Tool, ToolContext, ToolError
from opencode.tools.question import Question
from opencode.tools.todo import TodoRead, TodoWrite
from opencode.tools.webfetch import WebFetch
from opencode.tools.websearch import WebSearch

logger = logging.getLogger(__name__)

_MAX_REPORTED_ERRORS = 10


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool = False


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._specs: dict[str, ToolSpec] = {}  # a tool's schema never changes: build it once

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"A tool named {tool.name!r} is already registered.")
        self._tools[tool.name] = tool
        self._specs[tool.name] = ToolSpec(
            tool.name, tool.description, provider_schema(tool.json_schema())
        )

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def select(self, names: Sequence[str] | None) -> list[Tool]:
        """The named tools, in the given order; ``None`` selects every tool."""
        if names is None:
            return list(self._tools.values())
        unknown = [name for name in names if name not in self._tools]
        if unknown:
            raise ValueError(
                f"Unknown tools: {', '.join(unknown)}. Valid tools: {', '.join(self._tools)}."
            )
        return [self._tools[name] for name in dict.fromkeys(names)]

    def specs(self, tools: Iterable[Tool]) -> tuple[ToolSpec, ...]:
        return tuple(self._specs[tool.name] for tool in tools)

    async def execute(
        self, call: ToolCall, ctx: ToolContext, allowed: Collection[str] | None = None
    ) -> ToolResult:
        """Run one tool call; never raises except ``asyncio.CancelledError``."""
        available = [name for name in self._tools if allowed is None or name in allowed]
        if call.name not in available:
            known = call.name in self._tools
            problem = "is not enabled for this run" if known else "does not exist"
            listed = ", ".join(available) or "none"
            return ToolResult(
                f"Tool {call.name!r} {problem}. Available tools: {listed}.", is_error=True
            )
        tool = self._tools[call.name]
        try:
            params = _parse_arguments(tool, call.arguments)
        except _InvalidArguments as exc:
            return ToolResult(str(exc), is_error=True)
        try:
            return _result(await tool.run(params, ctx))
        except ToolError as exc:
            return _result(str(exc) or f"Tool {tool.name} failed.", is_error=True)
        except Exception:
            reference = new_id("err")
            logger.exception("Tool %s failed (call %s, %s)", tool.name, call.id, reference)
            return ToolResult(
                f"Tool {tool.name} failed with an internal error (id {reference}).", is_error=True
            )


def _result(text: str, *, is_error: bool = False) -> ToolResult:
    """Tool output comes from outside (web pages, search APIs): no lone surrogates or NULs,
    and no credential a backend echoed in an error."""
    return ToolResult(redact(scrub(text)), is_error=is_error)


def default_registry(settings: Settings | None = None) -> ToolRegistry:
    """Every tool the agent has; ``settings`` configures the ones that reach the web."""
    settings = settings or Settings()
    registry = ToolRegistry()
    for tool in (
        TodoWrite(),
        TodoRead(),
        Question(),
        WebFetch.from_settings(settings),
        WebSearch.from_settings(settings),
    ):
        registry.register(tool)
    return registry


def provider_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON schema with every ``$ref`` inlined and ``title`` noise dropped.

    Gemini rejects ``$ref``/``$defs`` in function declarations, and titles only cost tokens.
    Recursive models cannot be inlined and raise ``ValueError``.
    """
    defs = schema.get("$defs", {})
    body = {key: value for key, value in schema.items() if key != "$defs"}
    return _inline(body, defs, seen=())


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            raise ValueError(f"Cannot inline recursive schema {name!r}.")
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _inline({**defs[name], **siblings}, defs, (*seen, name))
    inlined: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            inlined[key] = {prop: _inline(sub, defs, seen) for prop, sub in value.items()}
        else:
            inlined[key] = _inline(value, defs, seen)
    return inlined


class _InvalidArguments(Exception):
    pass


def _parse_arguments(tool: Tool, arguments: str) -> BaseModel:
    try:
        raw = json.loads(arguments) if arguments and arguments.strip() else {}
    except json.JSONDecodeError as exc:
        raise _InvalidArguments(
            f"Arguments for tool {tool.name} are not valid JSON: {exc}. Send a single JSON object."
        ) from exc
    if not isinstance(raw, dict):
        raise _InvalidArguments(
            f"Arguments for tool {tool.name} must be a JSON object, got {_json_type(raw)}."
        )
    try:
        return tool.Params.model_validate(raw)
    except ValidationError as exc:
        raise _InvalidArguments(_summarise(tool.name, exc)) from exc


def _summarise(tool_name: str, error: ValidationError) -> str:
    """One line per problem, ``path: message``; pydantic's ``str()`` adds URLs and inputs."""
    problems = error.errors(include_url=False, include_input=False)
    lines = [f"- {_location(problem['loc'])}: {problem['msg']}" for problem in problems]
    if len(lines) > _MAX_REPORTED_ERRORS:
        hidden = len(lines) - _MAX_REPORTED_ERRORS
        lines = [*lines[:_MAX_REPORTED_ERRORS], f"- ... and {hidden} more"]
    return f"Invalid arguments for tool {tool_name}:\n" + "\n".join(lines)


def _location(loc: tuple[int | str, ...]) -> str:
    """``("todos", 0, "status")`` reads ``todos[0].status``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(arguments)"


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "an array", type(None): "null"}
    return names.get(type(value), type(value).__name__)
