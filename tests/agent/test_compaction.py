"""The pure side of compaction: where to cut, what the summariser reads, what gets pruned."""

from datetime import UTC, datetime

from opencode.agent.compaction import (
    PRUNED,
    estimate_tokens,
    plan_fold,
    prune_tool_outputs,
    render_transcript,
    summary_request,
)
from opencode.llm.types import ChatMessage, ToolCall
from opencode.storage.base import MessageRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def user(seq: int, text: str = "question") -> MessageRecord:
    parts = [{"type": "text", "text": text}]
    return MessageRecord(f"u{seq}", "s", "user", NOW, NOW, "completed", parts, text, seq=seq)


def reply(seq: int, text: str = "answer", tool_output: str | None = None) -> MessageRecord:
    parts: list[dict] = [{"type": "step-start", "step_number": 1}]
    if tool_output is not None:
        parts.append(
            {
                "type": "tool",
                "call_id": f"c{seq}",
                "name": "webfetch",
                "arguments": {"url": "https://example.com"},
                "state": "completed",
                "output": tool_output,
            }
        )
    parts.append({"type": "text", "text": text})
    return MessageRecord(f"a{seq}", "s", "assistant", NOW, NOW, "completed", parts, text, seq=seq)


def summary(seq: int) -> MessageRecord:
    parts = [{"type": "compaction", "summary": "old summary"}]
    return MessageRecord(f"s{seq}", "s", "assistant", NOW, NOW, "completed", parts, seq=seq)


def conversation(exchanges: int) -> list[MessageRecord]:
    records = []
    for n in range(exchanges):
        records += [user(2 * n + 1, f"q{n}"), reply(2 * n + 2, f"a{n}")]
    return records


def test_fold_keeps_the_most_recent_messages_from_a_user_message_on():
    fold = plan_fold(conversation(5), keep_messages=4, keep_tokens=10_000)
    assert [r.id for r in fold.kept] == ["u7", "a8", "u9", "a10"]
    assert [r.id for r in fold.folded] == ["u1", "a2", "u3", "a4", "u5", "a6"]

    # An odd budget never starts the kept run on a reply: its question goes with it or neither.
    fold = plan_fold(conversation(5), keep_messages=3, keep_tokens=10_000)
    assert [r.id for r in fold.kept] == ["u9", "a10"]


def test_fold_respects_the_token_budget_and_can_fold_everything():
    records = [user(1), reply(2, "x" * 4_000), user(3), reply(4, "y" * 4_000)]
    fold = plan_fold(records, keep_messages=10, keep_tokens=1_500)
    assert [r.id for r in fold.kept] == ["u3", "a4"]
    fold = plan_fold(records, keep_messages=10, keep_tokens=500)
    assert fold.kept == [] and len(fold.folded) == 4
    fold = plan_fold(records, keep_messages=0, keep_tokens=10_000)
    assert fold.kept == [] and len(fold.folded) == 4


def test_fold_skips_summary_messages_and_reports_nothing_to_fold():
    fold = plan_fold([summary(3), user(4), reply(5)], keep_messages=2, keep_tokens=10_000)
    assert fold.folded == [] and [r.id for r in fold.kept] == ["u4", "a5"]


def test_transcript_renders_tool_calls_and_clips_long_outputs():
    records = [user(1, "fetch it"), reply(2, "Here it is.", tool_output="z" * 10_000)]
    text = render_transcript(records, max_chars=100_000)
    assert text.startswith("[user]\nfetch it")
    assert '[tool call] webfetch({"url": "https://example.com"})' in text
    assert "[tool result]\n" in text and "characters omitted" in text
    assert text.count("z") < 2_000 and text.endswith("[assistant]\nHere it is.")


def test_transcript_leaves_out_the_oldest_messages_past_the_limit():
    records = conversation(50)
    text = render_transcript(records, max_chars=300)
    assert text.startswith("[... ") and "earlier messages left out" in text
    assert text.endswith("[assistant]\na49") and "q0" not in text


def test_summary_request_carries_the_previous_summary():
    request = summary_request("before", [user(1, "hello")], max_chars=1_000)
    assert request.startswith("<previous_summary>\nbefore\n</previous_summary>")
    assert "<conversation>\n[user]\nhello\n</conversation>" in request
    assert "<previous_summary>" not in summary_request(None, [user(1)], max_chars=1_000)
    assert "<current_todo_list>" not in request


def test_summary_request_lists_the_current_todos():
    todos = [{"id": "1", "content": "Book the hôtel", "status": "pending"}]
    request = summary_request(None, [user(1)], todos=todos, max_chars=1_000)
    assert request.index("</conversation>") < request.index("<current_todo_list>")
    assert '"content": "Book the hôtel"' in request


def tool(call_id: str, size: int) -> ChatMessage:
    return ChatMessage("tool", "o" * size, tool_call_id=call_id)


def test_pruning_replaces_old_tool_outputs_beyond_the_budget():
    call = ChatMessage("assistant", tool_calls=(ToolCall("c1", "webfetch", "{}"),))
    messages = [
        ChatMessage("user", "go"),
        call,
        tool("c1", 4_000),  # 1,000 tokens: oldest, pruned
        ChatMessage("assistant", tool_calls=(ToolCall("c2", "webfetch", "{}"),)),
        tool("c2", 4_000),
        ChatMessage("assistant", tool_calls=(ToolCall("c3", "webfetch", "{}"),)),
        tool("c3", 4_000),
        tool("c4", 40),  # small outputs are never worth a marker
    ]
    pruned = prune_tool_outputs(
        messages, budget_tokens=2_100
    )  # c4 and c3 fit, c2 fits too, c1 does not
    assert [m.text == PRUNED for m in pruned] == [False] * 2 + [True] + [False] * 5
    assert pruned[2].tool_call_id == "c1" and pruned[2].role == "tool"
    assert messages[2].text == "o" * 4_000  # the input is not changed
    assert prune_tool_outputs(messages, budget_tokens=10_000) == messages


def test_token_estimate_counts_text_reasoning_and_arguments():
    message = ChatMessage("assistant", "a" * 400, tool_calls=(ToolCall("c", "n", "b" * 399),))
    assert estimate_tokens([message]) == 200
