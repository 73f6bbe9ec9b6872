"""Tool schemas as Gemini function declarations, converted as LiteLLM 1.106 converts them
(``build_vertex_schema`` in ``litellm/llms/vertex_ai/common_utils.py``): Gemini takes an OpenAPI
subset of JSON schema, and rejects what is outside it.

The steps, in LiteLLM's order: ``$ref`` inlined from ``$defs``/``definitions`` (a circular one
left for the filter to drop); ``anyOf`` with a ``null`` member made ``nullable``; type lists
(``["string", "null"]``) turned into ``anyOf``; empty strings in ``enum`` made null, and
``enum`` dropped on non-string types; arrays without ``items`` given object items; objects typed,
empty ``properties`` dropped; then every keyword outside Gemini's ``Schema`` dropped (so
``additionalProperties``, ``$schema``, ``exclusiveMinimum``, ``const``, ``oneOf``...), a node with
``anyOf`` reduced to it (its title and description copied into each member), and ``format``
kept only as ``enum`` or ``date-time``.

Unlike LiteLLM, the tool's schema is not changed in place: LiteLLM rewrites the dicts it is
given, so through it a ``ToolSpec`` shared between requests changes after its first Gemini
request (and the second request sends a different schema than the first).
"""

import copy
import json
from collections import OrderedDict
from typing import Any

from opencode.llm.types import ToolSpec

SCHEMA_FIELDS = frozenset(
    {"type", "format", "title", "description", "nullable", "default", "items", "minItems"}
    | {"maxItems", "enum", "properties", "propertyOrdering", "required", "minProperties"}
    | {"maxProperties", "minimum", "maximum", "minLength", "maxLength", "pattern", "example"}
    | {"anyOf"}
)
_TYPE_SPECIFIC = ("properties", "required", "additionalProperties", "items", "minItems")
_TYPE_SPECIFIC += ("maxItems", "minProperties", "maxProperties")
_CACHE: "OrderedDict[str, dict[str, Any]]" = OrderedDict()  # a tool's declaration, built once
_CACHE_SIZE = 256


def function_declaration(spec: ToolSpec) -> dict[str, Any]:
    key = json.dumps([spec.name, spec.description, spec.parameters], sort_keys=True)
    if (declaration := _CACHE.get(key)) is None:
        declaration = {"name": spec.name, "description": spec.description}
        if isinstance(spec.parameters, dict):
            declaration["parameters"] = gemini_schema(spec.parameters)
        _CACHE[key] = declaration
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return declaration


def gemini_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(parameters)
    defs = schema.pop("$defs", {})
    schema = _inline(schema, {**defs, **schema.get("definitions", {})}, frozenset())
    _nullable(schema)
    _type_lists(schema)
    _enum_empty_strings(schema)
    _enum_types(schema)
    _array_items(schema)
    _object_types(schema)
    return _filtered(schema)


def _inline(node: Any, defs: dict[str, Any], chain: frozenset[str]) -> Any:
    """LiteLLM's ``unpack_defs``: a ``$ref`` node becomes (a copy of) its target."""
    if isinstance(node, list):
        return [_inline(item, defs, chain) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(ref := node.get("$ref"), str):
        name = ref.split("/")[-1]
        target = defs.get(name)
        if name in chain or not isinstance(target, dict):
            return node
        child = {**defs, **target.get("$defs", {}), **target.get("definitions", {})}
        return _inline(copy.deepcopy(target), child, chain | {name})
    scope = {**defs, **node.get("$defs", {}), **node.get("definitions", {})}
    return {key: _inline(value, scope, chain) for key, value in node.items()}


def _children(schema: dict[str, Any], keys: tuple[str, ...]) -> list[Any]:
    found: list[Any] = []
    if "properties" in keys and isinstance(props := schema.get("properties"), dict):
        found += props.values()
    if "items" in keys and "items" in schema:
        found.append(schema["items"])
    if "anyOf" in keys and isinstance(any_of := schema.get("anyOf"), list):
        found += any_of
    return [child for child in found if isinstance(child, dict)]


def _nullable(schema: dict[str, Any]) -> None:
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        contains_null, index = False, 0
        while index < len(any_of):  # LiteLLM removes while iterating: the next member is skipped
            member = any_of[index]
            if isinstance(member, dict) and member.get("type") == "null":
                any_of.remove(member)
                contains_null = True
            elif isinstance(member, dict) and not member:
                member["type"] = "object"
            index += 1
        if contains_null:
            for member in any_of:
                if isinstance(member, dict):
                    member["nullable"] = True
    for child in _children(schema, ("properties", "items")):
        _nullable(child)


def _type_lists(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, list) and len(kind) > 1:
        any_of: list[dict[str, Any]] = []
        for name in kind:
            if not isinstance(name, str):
                continue
            member: dict[str, Any] = {"type": name}
            if name in ("object", "array"):
                member.update((f, copy.deepcopy(schema[f])) for f in _TYPE_SPECIFIC if f in schema)
            any_of.append(member)
        if any(name in ("object", "array") for name in kind if isinstance(name, str)):
            for field in _TYPE_SPECIFIC:
                schema.pop(field, None)
        schema["anyOf"] = any_of
        schema.pop("type")
    elif isinstance(kind, list) and len(kind) == 1:
        schema["type"] = kind[0]
    for child in _children(schema, ("properties", "items", "anyOf")):
        _type_lists(child)


def _enum_empty_strings(schema: dict[str, Any]) -> None:
    if isinstance(schema.get("enum"), list):
        schema["enum"] = [None if value == "" else value for value in schema["enum"]]
    for child in _children(schema, ("properties", "items")):
        _enum_empty_strings(child)


def _is_string(schema: Any) -> bool:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return isinstance(kind, str) and kind.lower() == "string"


def _enum_types(schema: dict[str, Any]) -> None:
    """Gemini allows ``enum`` on strings only."""
    if isinstance(schema.get("enum"), list):
        any_of = schema.get("anyOf")
        members = any_of if isinstance(any_of, list) else []
        if not (_is_string(schema) or any(_is_string(member) for member in members)):
            schema.pop("enum")
    for child in _children(schema, ("properties", "items", "anyOf")):
        _enum_types(child)


def _array_items(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _array_items(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if isinstance(kind, str) and kind.lower() == "array" and node.get("items", {}) == {}:
        node["items"] = {"type": "object"}
    for value in node.values():
        if isinstance(value, (dict, list)):
            _array_items(value)


def _object_types(schema: dict[str, Any]) -> None:
    if not {"type", "anyOf", "oneOf", "allOf"} & schema.keys():
        schema["type"] = "object"
    properties = schema.get("properties")
    if properties is not None:
        if "required" in schema and schema["required"] is None:
            schema.pop("required")
        if not properties:
            schema.pop("properties")
            schema.pop("required", None)
        schema["type"] = "object"
        for child in properties.values() if isinstance(properties, dict) else ():
            if isinstance(child, dict):
                _object_types(child)
    if isinstance(items := schema.get("items"), dict):
        _object_types(items)
    for key in ("anyOf", "oneOf", "allOf"):
        members = schema.get(key)
        for member in members if isinstance(members, list) else ():
            if isinstance(member, dict):
                _object_types(member)


def _filtered(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    if schema.get("anyOf"):
        any_of = schema["anyOf"]
        notes = {k: schema[k] for k in ("title", "description") if schema.get(k)}
        if notes and isinstance(any_of, list) and all(isinstance(m, dict) for m in any_of):
            for member in any_of:
                member.update(notes)
        schema = {"anyOf": any_of}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _filtered(sub) for name, sub in value.items()}
        elif key == "format":
            if value in ("enum", "date-time"):
                out[key] = value
        elif key == "items" and isinstance(value, dict):
            out[key] = _filtered(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [_filtered(member) for member in value]
        else:
            out[key] = value
    return out
