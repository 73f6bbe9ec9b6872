"""The Codex seed schema as a validator: ``rawResponseItem/completed`` params, or ``ResponseItem``s.

``codex/RawResponseItemCompletedNotification.schema.json`` is the seed, vendored verbatim (a
test keeps it equal to the original). Problems come one per failing field, with the field's
path and what it must be; they never quote the value, which may be huge. Inside a ``oneOf``
whose branches are told apart by ``type`` (items, content items, actions), only the branch the
value names is explained, so a bad ``output`` reads "output: must be an object", not fourteen
reasons why it is not each other kind of item.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_PATH = Path(__file__).parent / "codex" / "RawResponseItemCompletedNotification.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
ITEM_SCHEMA = {"$ref": "#/definitions/ResponseItem", "definitions": SCHEMA["definitions"]}
ITEM_TYPES: tuple[str, ...] = tuple(
    branch["properties"]["type"]["enum"][0]
    for branch in SCHEMA["definitions"]["ResponseItem"]["oneOf"]
)



@cache
def _validator(item: bool) -> "Draft7Validator":
    """Built on first use: jsonschema is imported by the first import of a history, not by
    the server's start-up (~40 ms of a start-up that should take under a second)."""
    from jsonschema import Draft7Validator

    return Draft7Validator(ITEM_SCHEMA if item else SCHEMA)

_JSON_TYPES = {
    "string": "a string",
    "array": "an array",
    "object": "an object",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "null": "null",
}


@dataclass(frozen=True)
class SchemaProblem:
    """One failing field: ``path`` inside the value checked (for a list of items, ``index``
    names the item), ``keyword`` the JSON Schema keyword that failed."""

    path: tuple[str | int, ...]
    message: str
    keyword: str
    index: int | None = None

    @property
    def where(self) -> str:
        """``items[3].output.body``, ``item.phase`` (in notification params), or ``value``
        for the value itself."""
        where = "" if self.index is None else f"items[{self.index}]"
        for part in self.path:
            where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else part
        return where or "value"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def notification_problems(params: Any) -> list[SchemaProblem]:
    """What is wrong with ``rawResponseItem/completed`` params (``[]``: they validate)."""
    return _problems(_validator(False).iter_errors(params))


def item_problems(item: Any) -> list[SchemaProblem]:
    """What is wrong with one ``ResponseItem`` (``[]``: it validates)."""
    return _problems(_validator(True).iter_errors(item))


def items_problems(items: Sequence[Any]) -> list[SchemaProblem]:
    """What is wrong with each item of a list, each problem naming its item's index."""
    return [
        replace(problem, index=index)
        for index, item in enumerate(items)
        for problem in item_problems(item)
    ]


def _problems(errors: Iterable["ValidationError"]) -> list[SchemaProblem]:
    seen: dict[tuple[tuple[str | int, ...], str], SchemaProblem] = {}
    for error in errors:
        for problem in _explain(error, nullable=False):
            seen.setdefault((problem.path, problem.message), problem)
    return list(seen.values())


def _explain(error: "ValidationError", *, nullable: bool) -> list[SchemaProblem]:
    path = tuple(error.absolute_path)
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [_leaf(error, nullable)]
    branches: list[dict[str, Any]] = error.validator_value
    chosen, from_null = _branch(branches, error.instance)
    if chosen is not None:
        inner = [e for e in error.context if e.relative_schema_path[0] == chosen]
        return [p for e in inner for p in _explain(e, nullable=from_null)]
    kinds = [_discriminator(branch) for branch in branches]
    if all(kinds) and isinstance(error.instance, dict):
        allowed = ", ".join(json.dumps(kind) for kind in kinds)
        return [SchemaProblem((*path, "type"), f"must be one of {allowed}", "oneOf")]
    if all("enum" in branch for branch in branches):
        values = [value for branch in branches for value in branch["enum"]]
        return [SchemaProblem(path, _one_of(values, nullable), "enum")]
    if all(e.validator == "type" for e in error.context):
        kinds = [kind for e in error.context for kind in _as_list(e.validator_value)]
        return [SchemaProblem(path, _must_be(kinds, nullable), "type")]
    return [SchemaProblem(path, "matches none of the forms the schema allows", error.validator)]


def _branch(branches: list[dict[str, Any]], instance: Any) -> tuple[int | None, bool]:
    """The branch ``instance`` means to be, if that is clear: the one whose ``type`` enum holds
    the instance's ``type``, the only one left once a ``null`` alternative is set aside (then
    True: null would also do), or the only one of the instance's JSON type."""
    if isinstance(instance, dict):
        for index, branch in enumerate(branches):
            kind = _discriminator(branch)
            if kind is not None and kind == instance.get("type"):
                return index, False
    if instance is not None:
        others = [i for i, branch in enumerate(branches) if branch != {"type": "null"}]
        if len(others) == 1 and len(branches) == 2:
            return others[0], True
    fitting = [i for i, branch in enumerate(branches) if _json_type(instance) == branch.get("type")]
    return (fitting[0], False) if len(fitting) == 1 else (None, False)


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else ""


def _discriminator(branch: dict[str, Any]) -> str | None:
    enum = branch.get("properties", {}).get("type", {}).get("enum")
    return enum[0] if isinstance(enum, list) and len(enum) == 1 else None


def _leaf(error: "ValidationError", nullable: bool) -> SchemaProblem:
    path = tuple(error.absolute_path)
    keyword = str(error.validator)
    if keyword == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        name = next((n for n in missing if repr(n) in error.message), missing[0])
        return SchemaProblem((*path, name), "is required", keyword)
    if keyword == "type":
        return SchemaProblem(path, _must_be(_as_list(error.validator_value), nullable), keyword)
    if keyword == "enum":
        return SchemaProblem(path, _one_of(error.validator_value, nullable), keyword)
    if keyword == "minimum":
        return SchemaProblem(path, f"must be at least {error.validator_value:g}", keyword)
    return SchemaProblem(path, f"fails the schema's {keyword!r} rule", keyword)


def _must_be(kinds: list[str], nullable: bool) -> str:
    names = [_JSON_TYPES.get(kind, kind) for kind in dict.fromkeys([*kinds, *["null"] * nullable])]
    return "must be " + " or ".join(names)


def _one_of(values: list[Any], nullable: bool) -> str:
    listed = ", ".join(json.dumps(value) for value in values)
    return f"must be one of {listed}" + (" or null" if nullable else "")


def _as_list(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else [value]
