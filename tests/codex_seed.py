"""The Codex seed schema, read from the shared seed itself (not the repository's copy): what every
exported item and notification is checked against, with python-jsonschema's ``Draft7Validator``.

Away from the shared workspace the repository's verbatim copy stands in for it.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[1]
NAME = "RawResponseItemCompletedNotification.schema.json"
# The shared workspace's seed, next to the repository (../shared), else where this machine keeps
# it; the repository's copy (opencode/schemas/codex/, read by the import at runtime) must be
# byte for byte the same, which test_codex_schema checks wherever the seed is there.
SHARED_SEEDS = (ROOT.parent / "shared" / "seeds" / NAME, Path("/work/shared/seeds") / NAME)
VENDORED = ROOT / "opencode" / "schemas" / "codex" / NAME


def shared_seed() -> Path | None:
    return next((path for path in SHARED_SEEDS if path.is_file()), None)


@cache
def seed_text() -> str:
    """The seed's text: the shared seed itself when it is there, else the repository's verbatim
    copy (a clone away from the shared workspace still checks every item)."""
    return (shared_seed() or VENDORED).read_text(encoding="utf-8")


def notification_validator() -> Draft7Validator:
    schema = json.loads(seed_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def item_validator() -> Draft7Validator:
    schema = json.loads(seed_text())
    return Draft7Validator(
        {"$ref": "#/definitions/ResponseItem", "definitions": schema["definitions"]}
    )


def assert_valid(notifications: list[dict[str, Any]]) -> None:
    """Every params object validates against the seed."""
    validator = notification_validator()
    for index, params in enumerate(notifications):
        errors = [e.message for e in validator.iter_errors(params)]
        assert not errors, (index, params, errors)


def _message(role: str, kind: str, text: str, **fields: Any) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}], **fields}


# One valid item of each of the seed's 14 types (and the variants that matter here).
VALID_ITEMS: list[dict[str, Any]] = [
    _message("developer", "input_text", "Answer briefly."),
    _message("user", "input_text", "What changed in FastAPI 0.115?"),
    {
        "type": "reasoning",
        "id": "rs_01",
        "summary": [{"type": "summary_text", "text": "Planning the lookup"}],
        "content": [{"type": "reasoning_text", "text": "Fetch the notes."}],
        "encrypted_content": "gAAAAABo-opaque",
    },
    _message("assistant", "output_text", "Fetching the release notes first.", phase="commentary"),
    {
        "type": "function_call",
        "name": "webfetch",
        "call_id": "call_01",
        "arguments": '{"url": "https://fastapi.tiangolo.com/release-notes/"}',
    },
    {
        "type": "function_call_output",
        "call_id": "call_01",
        "output": {"body": "# Release Notes", "success": True},
    },
    {"type": "function_call", "name": "todoread", "call_id": "call_02", "arguments": "{}"},
    {
        "type": "function_call_output",
        "call_id": "call_02",
        "output": {"body": [{"type": "input_text", "text": "no todos"}], "success": False},
    },
    {
        "type": "local_shell_call",
        "call_id": "sh_01",
        "status": "completed",
        "action": {"type": "exec", "command": ["ls", "-la"], "timeout_ms": 1000},
    },
    {"type": "tool_search_call", "arguments": {"query": "pdf"}, "execution": "client"},
    {"type": "custom_tool_call", "call_id": "ct_01", "name": "apply_patch", "input": "*** Begin"},
    {"type": "custom_tool_call_output", "call_id": "ct_01", "output": {"body": "applied"}},
    {"type": "tool_search_output", "execution": "server", "status": "completed", "tools": []},
    {
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": "FastAPI 0.115 release notes"},
    },
    {"type": "image_generation_call", "id": "ig_01", "status": "completed", "result": "iVBOR"},
    {
        "type": "ghost_snapshot",
        "ghost_commit": {
            "id": "abc123",
            "preexisting_untracked_files": [],
            "preexisting_untracked_dirs": [],
        },
    },
    {"type": "compaction", "encrypted_content": "gAAAAABo-summary"},
    {"type": "other"},
    _message("assistant", "output_text", "0.115 adds ...", phase="final_answer"),
]

# (why it fails, the item, the field the 422 must name: its loc after ["body", "items", index])
INVALID_ITEMS: list[tuple[str, Any, list[str | int]]] = [
    ("unknown type", {"type": "agent_message", "text": "hi"}, ["type"]),
    ("no type", {"role": "user", "content": []}, ["type"]),
    ("not an object", "hello", []),
    ("missing role", {"type": "message", "content": []}, ["role"]),
    ("content as a string", {"type": "message", "role": "user", "content": "hi"}, ["content"]),
    (
        "phase analysis",
        _message("assistant", "output_text", "x", phase="analysis"),
        ["phase"],
    ),
    (
        "content item without text",
        {"type": "message", "role": "user", "content": [{"type": "input_text"}]},
        ["content", 0, "text"],
    ),
    (
        "arguments as an object",
        {"type": "function_call", "name": "f", "call_id": "c", "arguments": {"a": 1}},
        ["arguments"],
    ),
    ("missing call_id", {"type": "function_call", "name": "f", "arguments": "{}"}, ["call_id"]),
    ("missing name", {"type": "function_call", "call_id": "c", "arguments": "{}"}, ["name"]),
    (
        "output as a bare string",
        {"type": "function_call_output", "call_id": "c", "output": "ok"},
        ["output"],
    ),
    (
        "output_text in a tool output body",
        {
            "type": "function_call_output",
            "call_id": "c",
            "output": {"body": [{"type": "output_text", "text": "x"}]},
        },
        ["output", "body", 0, "type"],
    ),
    (
        "success as a string",
        {"type": "function_call_output", "call_id": "c", "output": {"body": "x", "success": "y"}},
        ["output", "success"],
    ),
    ("reasoning without id", {"type": "reasoning", "summary": []}, ["id"]),
    (
        "reasoning content as a string",
        {"type": "reasoning", "id": "rs", "summary": [], "content": "thinking"},
        ["content"],
    ),
    (
        "web search action find",
        {"type": "web_search_call", "action": {"type": "find", "pattern": "x"}},
        ["action", "type"],
    ),
    ("compaction without encrypted_content", {"type": "compaction"}, ["encrypted_content"]),
    (
        "shell status done",
        {"type": "local_shell_call", "status": "done", "action": {"type": "exec", "command": []}},
        ["status"],
    ),
    (
        "negative timeout",
        {
            "type": "local_shell_call",
            "status": "completed",
            "action": {"type": "exec", "command": ["ls"], "timeout_ms": -1},
        },
        ["action", "timeout_ms"],
    ),
    (
        "ghost commit without id",
        {
            "type": "ghost_snapshot",
            "ghost_commit": {"preexisting_untracked_files": [], "preexisting_untracked_dirs": []},
        },
        ["ghost_commit", "id"],
    ),
]
