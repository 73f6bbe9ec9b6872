"""Our Codex items against two schemas: the seed we target, and what the pinned Codex CLI ships.

Every item must validate against the seed (design note ``codex-items.md``, decisions 2 and 3). It
must validate against upstream (``codex app-server generate-json-schema``, file
``v2/RawResponseItemCompletedNotification.json``) too, unless a known difference applies.

Known differences, seed -> upstream ``@openai/codex`` 0.169.0. A path is a pointer into that
upstream file; a ``ResponseItem`` variant is named by its ``title`` (its ``oneOf`` index moves):

1. Tool output payload: ``ResponseItem/FunctionCallOutputResponseItem/properties/output`` and
   ``ResponseItem/CustomToolCallOutputResponseItem/properties/output`` are
   ``{"$ref": "#/definitions/FunctionCallOutputBody"}`` (a string or a content-item array, the
   bare body Codex really writes); the seed has ``FunctionCallOutputPayload``
   (``{"body", "success"}``), a definition that no longer exists upstream. No output satisfies
   both, so our seed-form outputs fail upstream; the same item with ``output`` replaced by its
   ``body`` passes upstream (the wire form behind the configuration switch, decision 3).
2. ``ResponseItem/ReasoningResponseItem/required`` no longer lists ``id``, and
   ``.../properties/id`` is ``string|null``. We always send the id, which both accept.
3. ``ResponseItem/FunctionCallOutputResponseItem``: ``call_id`` no longer required, may be null.
4. ``ResponseItem/ImageGenerationCallResponseItem``: ``id`` no longer required, may be null.
5. No ``id`` is ``writeOnly`` any more (an annotation: no effect on validation).
6. ``ghost_snapshot`` (``GhostSnapshotResponseItem``, ``definitions/GhostCommit``) is gone:
   valid in the seed only. We never emit it.
7. New variants, valid upstream only: ``additional_tools``, ``agent_message``,
   ``compaction_trigger``, ``configuration_update``, ``context_compaction`` (with new
   definitions ``AgentMessageInputContent``, ``ConfigurationReasoning``, ``ReasoningEffort``).
8. ``definitions/MessagePhase`` adds ``partial_answer``.
9. ``ResponseItem/MessageResponseItem/properties`` drops ``end_turn``; extra keys are allowed,
   so ``end_turn: true`` still validates, but its type is no longer checked.
10. New optional typed keys, which the seed leaves unconstrained (so a wrong type passes the seed
    only): ``internal_chat_message_metadata_passthrough``
    (``definitions/InternalChatMessageMetadataPassthrough``, ``{turn_id: string|null}`` or null)
    on every variant with an ``id``: this is the design note's "``metadata: {turn_id}``";
    ``encrypted_content`` (string|null) on message, local_shell_call, function_call,
    tool_search_call, custom_tool_call, web_search_call, image_generation_call; ``status`` on
    message and function_call; ``id`` on both outputs, tool_search_output and compaction;
    ``name`` on both outputs; ``namespace`` on function_call_output and custom_tool_call;
    ``encrypted_function_args`` (string array|null) on function_call.
11. ``definitions/ContentItem``: ``input_image`` needs ``image_url`` *or* ``file_id`` and gains
    ``detail`` (``ImageDetail``|null); new ``input_audio`` (``audio_url`` or ``file_id``);
    ``output_text`` gains ``annotations`` and ``logprobs`` (array|null).
12. ``definitions/FunctionCallOutputContentItem``: the same ``input_image`` change, plus
    ``input_audio`` and ``encrypted_content`` items.

``test_the_schemas_differ_only_as_documented`` fails when a new CLI version changes any of this;
``tests/codex/test_upstream_items.py`` holds our items to both schemas.
"""

import re
from typing import Any

import pytest

from tests.codex.upstream import problem, variants

META = "internal_chat_message_metadata_passthrough"

SEED_ONLY_TYPES = {"ghost_snapshot"}
UPSTREAM_ONLY_TYPES = {
    "additional_tools",
    "agent_message",
    "compaction_trigger",
    "configuration_update",
    "context_compaction",
}
NO_LONGER_REQUIRED = {
    "reasoning": {"id"},
    "function_call_output": {"call_id"},
    "image_generation_call": {"id"},
}
CHANGED_PROPERTIES = {  # ignoring ``writeOnly``
    "message": {"encrypted_content", "end_turn", META, "status"},
    "reasoning": {"id", META},
    "local_shell_call": {"encrypted_content", META},
    "function_call": {"encrypted_content", "encrypted_function_args", META, "status"},
    "tool_search_call": {"encrypted_content", META},
    "function_call_output": {"call_id", "id", META, "name", "namespace", "output"},
    "custom_tool_call": {"encrypted_content", META, "namespace"},
    "custom_tool_call_output": {"id", META, "name", "output"},
    "tool_search_output": {"id", META},
    "web_search_call": {"encrypted_content", META},
    "image_generation_call": {"encrypted_content", "id", META},
    "compaction": {"id", META},
}
CHANGED_DEFINITIONS = {"ContentItem", "FunctionCallOutputContentItem", "MessagePhase"}
SEED_ONLY_DEFINITIONS = {"FunctionCallOutputPayload", "GhostCommit"}
UPSTREAM_ONLY_DEFINITIONS = {
    "AgentMessageInputContent",
    "ConfigurationReasoning",
    "InternalChatMessageMetadataPassthrough",
    "ReasoningEffort",
}

# Each difference above that validation can show: (difference, definition, instance, seed
# accepts, upstream accepts).
PROBES = [
    (1, "ResponseItem", {"type": "function_call_output", "call_id": "c", "output": {"body": "ok"}}, True, False),
    (1, "ResponseItem", {"type": "function_call_output", "call_id": "c", "output": "ok"}, False, True),
    (1, "ResponseItem", {"type": "custom_tool_call_output", "call_id": "c", "output": {"body": "ok"}}, True, False),
    (1, "ResponseItem", {"type": "custom_tool_call_output", "call_id": "c", "output": "ok"}, False, True),
    (2, "ResponseItem", {"type": "reasoning", "summary": []}, False, True),
    (3, "ResponseItem", {"type": "function_call_output", "output": "ok"}, False, True),
    (4, "ResponseItem", {"type": "image_generation_call", "status": "completed", "result": "b64"}, False, True),
    (6, "ResponseItem", {"type": "ghost_snapshot", "ghost_commit": {"id": "g", "preexisting_untracked_files": [], "preexisting_untracked_dirs": []}}, True, False),
    (7, "ResponseItem", {"type": "additional_tools", "role": "developer", "tools": []}, False, True),
    (7, "ResponseItem", {"type": "agent_message", "author": "a", "recipient": "b", "content": []}, False, True),
    (7, "ResponseItem", {"type": "compaction_trigger"}, False, True),
    (7, "ResponseItem", {"type": "configuration_update", "reasoning": {"effort": "high"}}, False, True),
    (7, "ResponseItem", {"type": "context_compaction"}, False, True),
    (8, "ResponseItem", {"type": "message", "role": "assistant", "content": [], "phase": "partial_answer"}, False, True),
    (9, "ResponseItem", {"type": "message", "role": "assistant", "content": [], "end_turn": "yes"}, False, True),
    (10, "ResponseItem", {"type": "message", "role": "user", "content": [], META: {"turn_id": 7}}, True, False),
    (10, "ResponseItem", {"type": "function_call", "name": "f", "call_id": "c", "arguments": "{}", "encrypted_function_args": "x"}, True, False),
    (11, "ContentItem", {"type": "input_image", "image_url": "https://x/a.png", "detail": "huge"}, True, False),
    (11, "ContentItem", {"type": "input_image", "file_id": "file_1"}, False, True),
    (11, "ContentItem", {"type": "input_audio", "audio_url": "data:audio/wav;base64,AA=="}, False, True),
    (11, "ContentItem", {"type": "output_text", "text": "t", "annotations": "none"}, True, False),
    (12, "FunctionCallOutputContentItem", {"type": "encrypted_content", "encrypted_content": "x"}, False, True),
]  # fmt: skip


def without_write_only(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: without_write_only(value) for key, value in node.items() if key != "writeOnly"}
    if isinstance(node, list):
        return [without_write_only(value) for value in node]
    return node


def test_upstream_params_are_still_thread_turn_and_item(upstream):
    schema = upstream.schema
    assert schema["required"] == ["item", "threadId", "turnId"]
    assert schema["properties"]["threadId"] == {"type": "string"}
    assert schema["properties"]["turnId"] == {"type": "string"}
    assert schema["properties"]["item"] == {"$ref": "#/definitions/ResponseItem"}
    # The JSON bundle leaves the method out of ``ServerNotification``; the TypeScript union has it.
    method = (
        r'"method": "rawResponseItem/completed", "params": RawResponseItemCompletedNotification\b'
    )
    assert re.search(method, upstream.server_notification_ts), (
        "rawResponseItem/completed is gone or renamed"
    )


def test_the_schemas_differ_only_as_documented(upstream, seed):
    schema = upstream.schema
    theirs, ours = variants(schema), variants(seed)
    assert set(ours) - set(theirs) == SEED_ONLY_TYPES
    assert set(theirs) - set(ours) == UPSTREAM_ONLY_TYPES
    shared = sorted(set(ours) & set(theirs))
    relaxed = {t: set(ours[t]["required"]) - set(theirs[t]["required"]) for t in shared}
    assert {t: names for t, names in relaxed.items() if names} == NO_LONGER_REQUIRED
    assert all(set(theirs[t]["required"]) <= set(ours[t]["required"]) for t in shared)
    changed = {}
    for t in shared:
        mine, upstream_properties = ours[t]["properties"], theirs[t]["properties"]
        names = set(mine) | set(upstream_properties)
        diff = {n for n in names if without_write_only(mine.get(n)) != upstream_properties.get(n)}
        if diff:
            changed[t] = diff
    assert changed == CHANGED_PROPERTIES
    defs, seed_defs = schema["definitions"], seed["definitions"]
    assert set(seed_defs) - set(defs) == SEED_ONLY_DEFINITIONS
    assert set(defs) - set(seed_defs) == UPSTREAM_ONLY_DEFINITIONS
    common = (set(defs) & set(seed_defs)) - {"ResponseItem"}
    assert {name for name in common if defs[name] != seed_defs[name]} == CHANGED_DEFINITIONS


@pytest.mark.parametrize(
    ("difference", "definition", "instance", "in_seed", "in_upstream"),
    PROBES,
    ids=[f"{probe[0]}-{probe[2]['type']}" for probe in PROBES],
)
def test_each_known_difference_shows(
    upstream, seed, difference, definition, instance, in_seed, in_upstream
):
    where = f"difference {difference}, {definition} {instance}"
    assert (problem(seed, instance, definition) is None) is in_seed, where
    assert (problem(upstream.schema, instance, definition) is None) is in_upstream, where
