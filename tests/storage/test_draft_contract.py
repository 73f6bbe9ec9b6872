"""The ``Store.write_draft`` contract, for every backend in ``conftest.BACKENDS``: a patch stores
exactly what ``apply_patch`` says, and a step's usage lands in the same write."""

import random

import pytest

from opencode.storage.base import (
    USAGE_KEYS,
    DraftWrite,
    PartsPatch,
    StepUsage,
    Store,
    apply_patch,
    empty_usage,
)
from tests.storage.conftest import message_record, session_record

TEXTS = ["a", "héllo ", "你好", "👋🏽", '"q" \\ ', "\u2028", "x" * 300]


async def running_message(store: Store) -> tuple[str, str]:
    session = await store.create_session(session_record())
    message = await store.add_message(
        message_record(session.id, role="assistant", status="running", parts=[], content="")
    )
    return session.id, message.id


def random_patch(rng: random.Random, parts: list[dict]) -> PartsPatch:
    """A patch like the ones a draft makes: keep a prefix, maybe grow the last kept text part,
    replace the rest with new parts."""
    keep = len(parts) if rng.random() < 0.6 else rng.randint(0, len(parts))
    append = ""
    if keep and "text" in parts[keep - 1] and rng.random() < 0.7:
        append = "".join(rng.choice(TEXTS) for _ in range(rng.randint(1, 4)))
    tail = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["text", "reasoning", "tool", "step-start"])
        if kind == "tool":
            tail.append({"type": "tool", "call_id": f"c{rng.random()}", "arguments": {"q": "ü"}})
        elif kind == "step-start":
            tail.append({"type": "step-start", "step_number": rng.randint(1, 9)})
        else:
            tail.append({"type": kind, "text": rng.choice(TEXTS)})
    return PartsPatch(
        keep=keep,
        drop=len(parts) - keep,
        append_text=append,
        tail=tuple(tail),
        content_append=append,
    )


@pytest.mark.parametrize("seed", range(5))
async def test_a_sequence_of_patches_stores_what_apply_patch_says(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    session_id, message_id = await running_message(store)
    parts: list[dict] = []
    content = ""
    for step in range(40):
        patch = random_patch(rng, parts)
        parts, content = apply_patch(parts, content, patch)
        usage = {key: step for key in USAGE_KEYS}
        assert await store.write_draft(session_id, message_id, patch, usage=usage, cost=step / 8)
        stored = await store.get_message(message_id)
        assert stored.parts == parts, f"after patch {step}: {patch}"
        assert stored.content == content
        assert (stored.usage, stored.cost, stored.status) == (usage, step / 8, "running")


async def test_write_draft_sets_status_and_error_only_when_given(store: Store) -> None:
    session_id, message_id = await running_message(store)
    text = PartsPatch(keep=0, tail=({"type": "text", "text": "partial"},), content_append="partial")
    await store.write_draft(session_id, message_id, text, usage=empty_usage(), cost=0.0)
    more = PartsPatch(keep=1, append_text=" reply", content_append=" reply")
    await store.write_draft(
        session_id, message_id, more, usage=empty_usage(), cost=0.0, status="error", error="cut"
    )
    stored = await store.get_message(message_id)
    assert (stored.status, stored.error, stored.content) == ("error", "cut", "partial reply")
    assert stored.parts == [{"type": "text", "text": "partial reply"}]


async def test_write_draft_adds_the_step_usage_in_the_same_write(store: Store) -> None:
    session_id, message_id = await running_message(store)
    usage = {"input_tokens": 12, "output_tokens": 3}
    step = StepUsage(model="openai/gpt-4o-mini", usage=usage, cost=0.25)
    patch = PartsPatch(keep=0, tail=({"type": "step-finish", "cost": 0.25},))
    full_usage = empty_usage() | usage
    assert await store.write_draft(
        session_id, message_id, patch, usage=full_usage, cost=0.25, step=step
    )
    session = await store.get_session(session_id)
    assert session.total_cost == 0.25 and session.usage == full_usage
    [row] = await store.model_usage(session_id)
    assert (row.model, row.steps, row.cost) == ("openai/gpt-4o-mini", 1, 0.25)


async def test_write_draft_of_an_unknown_message_writes_nothing(store: Store) -> None:
    session_id, message_id = await running_message(store)
    step = StepUsage(model="m", usage={"input_tokens": 5}, cost=1.0)
    patch = PartsPatch(keep=0, tail=({"type": "text", "text": "x"},))
    assert not await store.write_draft(
        session_id, "msg_missing", patch, usage=empty_usage(), cost=1.0, step=step
    )
    # the right message in the wrong session is unknown too
    assert not await store.write_draft(
        "ses_other", message_id, patch, usage=empty_usage(), cost=1.0, step=step
    )
    session = await store.get_session(session_id)
    assert session.total_cost == 0.0 and await store.model_usage(session_id) == []
    assert (await store.get_message(message_id)).parts == []


async def test_patches_with_hundreds_of_parts(store: Store) -> None:
    session_id, message_id = await running_message(store)
    many = tuple({"type": "text", "text": f"p{index}"} for index in range(260))
    patch = PartsPatch(keep=0, tail=many)
    await store.write_draft(session_id, message_id, patch, usage=empty_usage(), cost=0.0)
    shrink = PartsPatch(keep=10, drop=250, tail=many[:3])
    await store.write_draft(session_id, message_id, shrink, usage=empty_usage(), cost=0.0)
    stored = await store.get_message(message_id)
    assert stored.parts == list(many[:10] + many[:3])


async def test_write_drafts_stores_a_batch_of_replies_in_one_call(store: Store) -> None:
    """The draft writer's batch: several replies (and a message that is gone) in one write,
    each stored exactly as its own ``write_draft`` would, steps added to their sessions."""
    rng = random.Random(7)
    replies = [await running_message(store) for _ in range(3)]
    expected: dict[str, tuple[list[dict], str]] = {m: ([], "") for _, m in replies}
    for round_number in range(6):
        writes = []
        for session_id, message_id in replies:
            parts, content = expected[message_id]
            patch = random_patch(rng, parts)
            expected[message_id] = apply_patch(parts, content, patch)
            step = (
                StepUsage("openai/gpt-4o-mini", {"input_tokens": 2}, 0.5) if round_number else None
            )
            usage = empty_usage() | {"output_tokens": round_number}
            writes.append(DraftWrite(session_id, message_id, patch, usage, 0.5, step=step))
        gone = DraftWrite(replies[0][0], "msg_gone", PartsPatch(keep=0), empty_usage(), 0.0)
        assert await store.write_drafts([*writes, gone]) == [True, True, True, False]
    for session_id, message_id in replies:
        stored = await store.get_message(message_id)
        assert (stored.parts, stored.content) == expected[message_id]
        assert stored.usage["output_tokens"] == 5 and stored.status == "running"
        session = await store.get_session(session_id)
        assert session.usage["input_tokens"] == 10 and session.total_cost == 2.5


async def test_write_drafts_sets_status_and_error_per_write(store: Store) -> None:
    (s1, m1), (s2, m2) = [await running_message(store) for _ in range(2)]
    text = PartsPatch(keep=0, tail=({"type": "text", "text": "partial"},), content_append="partial")
    assert await store.write_drafts(
        [
            DraftWrite(s1, m1, text, empty_usage(), 0.0, status="completed"),
            DraftWrite(s2, m2, text, empty_usage(), 0.0, status="error", error="boom"),
        ]
    ) == [True, True]
    first, second = await store.get_message(m1), await store.get_message(m2)
    assert (first.status, first.error, first.content) == ("completed", None, "partial")
    assert (second.status, second.error) == ("error", "boom")
    assert await store.write_drafts([]) == []
