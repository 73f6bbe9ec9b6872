"""Codex items -> stored messages (``events/codex_import.py``), and back through the export."""

from typing import Any

from opencode.agent.history import INTERRUPTED, build_history
from opencode.events.codex_import import imported_messages, unsafe_text_path
from opencode.events.codex_items import message_items
from tests.events.test_codex_items import TWO_STEPS, output, record, said, text, validated

CODEX_HISTORY = [
    {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Be brief"}],
    },
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Fetch it"}]},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Plan"}]}
    | {"content": None, "encrypted_content": "gAAA"},
    said("commentary", "Fetching."),
    {"type": "function_call", "name": "webfetch", "arguments": '{"url":"x"}', "call_id": "c1"},
    {"type": "function_call", "name": "todoread", "arguments": "{}", "call_id": "c2"},
    output("c1", "# Page", True),
    output("c2", "boom", False),
    {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
    {"type": "local_shell_call", "status": "completed", "call_id": "sh1"}
    | {"action": {"type": "exec", "command": ["ls"]}},
    output("sh1", "a.txt", True),  # the output of a call this server cannot run
    said("final_answer", "Done."),
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "More?"}]},
    {"type": "function_call", "name": "todoread", "arguments": "{}", "call_id": "c3"},
]


def exported(messages, session_id="ses_1") -> list[dict[str, Any]]:
    """The items of imported messages, stored as the service stores them."""
    items, parent = [], None
    for number, message in enumerate(messages):
        stored = record(
            message.role,
            message.parts,
            id=f"msg_{number}",
            content=message.content,
            parent_id=parent if message.role == "assistant" else None,
        )
        parent = stored.id if stored.role == "user" else parent
        items += validated(stored)
    return items


def test_an_import_groups_items_into_turns_and_steps():
    messages = imported_messages(CODEX_HISTORY)
    assert [m.role for m in messages] == ["assistant", "user", "assistant", "user", "assistant"]
    developer, user, reply, _, unfinished = messages
    assert developer.parts[1] == {"type": "item", "item": CODEX_HISTORY[0]}
    assert user.parts == [text("Fetch it")] and user.content == "Fetch it"
    assert [p["type"] for p in reply.parts] == [
        *("step-start", "reasoning", "text", "tool", "tool"),
        *("step-start", "item", "item", "item", "text"),
    ]
    assert reply.parts[1]["item_id"] == "rs_1" and reply.parts[1]["signature"] is None
    calls = [p for p in reply.parts if p["type"] == "tool"]
    assert [(c["state"], c["output"]) for c in calls] == [
        ("completed", "# Page"),
        ("error", "boom"),
    ]
    assert calls[0]["arguments"] == {"url": "x"} and calls[0]["arguments_json"] == '{"url":"x"}'
    assert reply.parts[2]["phase"] == "commentary" and reply.content == "Fetching.Done."
    assert unfinished.parts[1]["state"] == "error" and unfinished.parts[1]["output"] == INTERRUPTED


def test_export_import_export_gives_the_same_items():
    again = exported(imported_messages(CODEX_HISTORY))
    aborted = output("c3", "aborted", False)  # the call that had no output gets one
    assert again == [*CODEX_HISTORY, aborted]
    assert exported(imported_messages(again)) == again
    live = message_items(record("assistant", TWO_STEPS))
    assert exported(imported_messages(live)) == live


def test_the_model_sees_imported_items_as_text_where_they_stood():
    reply = imported_messages(CODEX_HISTORY)[2]
    history = build_history([record("assistant", reply.parts)])
    assert [m.role for m in history] == ["assistant", "tool", "tool", "assistant"]
    last = history[-1].text
    assert last.startswith('[Imported web_search_call item] {"type": "web_search_call"')
    assert "[Imported local_shell_call item]" in last and last.endswith("\n\nDone.")
    assert '"call_id": "sh1"' in last  # the orphan output, kept as context


def test_unsafe_text_is_found_with_its_path():
    assert unsafe_text_path({"a": [{"b": "ok"}, {"c": "nul\x00"}]}) == ("a", 1, "c")
    assert unsafe_text_path({"k\ud800": 1}) == ()
    assert unsafe_text_path({"a": ["fine", 1, None]}) is None
