"""The ``Store`` contract: every backend in ``conftest.BACKENDS`` must pass all of it.

Only the protocol is used here, never a backend's internals.
"""

import asyncio
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from opencode.core.users import LOCAL_USER_ID
from opencode.storage.base import USAGE_KEYS, Store, empty_usage
from tests.storage.conftest import T0, at, message_record, question_record, session_record

ALICE = "6f1c2b9e-4d7a-4e0b-9a53-0c1d2e3f4a5b"
BOB = "b8e2d4f6-1a3c-4b5d-8e7f-9a0b1c2d3e4f"

UNICODE_PARTS = [
    {"type": "text", "text": 'héllo wörld — 你好, мир 👋🏽 \u2028 "quoted" \\ back\\slash'},
    {"type": "tool-call", "input": {"path": "/tmp/ü.txt", "nested": [1, 2.5, None, True]}},
]


async def new_session(store: Store, **overrides) -> str:
    return (await store.create_session(session_record(**overrides))).id


async def fill(store: Store, session_id: str, count: int) -> list[str]:
    return [(await store.add_message(message_record(session_id))).id for _ in range(count)]


# sessions


async def test_create_and_get_session_round_trip(store: Store) -> None:
    record = session_record(title="Fix the bug ✨", model="anthropic/claude-sonnet-4")
    created = await store.create_session(record)
    assert created == record
    fetched = await store.get_session(record.id)
    assert fetched == record
    assert fetched.created_at == T0 and fetched.created_at.utcoffset() == timedelta(0)
    assert (fetched.message_count, fetched.total_cost, fetched.usage) == (0, 0.0, empty_usage())


async def test_create_session_starts_counters_at_zero(store: Store) -> None:
    record = session_record(message_count=7, total_cost=1.5, usage={"input_tokens": 3})
    created = await store.create_session(record)
    fetched = await store.get_session(record.id)
    for stored in (created, fetched):
        assert (stored.message_count, stored.total_cost, stored.usage) == (0, 0.0, empty_usage())


async def test_timestamps_in_another_offset_come_back_as_the_same_instant_in_utc(
    store: Store,
) -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2024, 5, 17, 14, 0, 0, 1, tzinfo=plus_two)
    record = session_record(created_at=moment, updated_at=moment)
    await store.create_session(record)
    fetched = await store.get_session(record.id)
    assert fetched.created_at == moment
    assert fetched.created_at.utcoffset() == timedelta(0)


async def test_naive_timestamps_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.create_session(session_record(created_at=datetime(2024, 1, 1)))


async def test_unknown_session_is_none(store: Store) -> None:
    assert await store.get_session("ses_missing") is None
    assert await store.update_session("ses_missing", title="x") is None


async def test_list_sessions_newest_first_with_total(store: Store) -> None:
    ids = [await new_session(store, created=i) for i in range(5)]
    newest_first = ids[::-1]

    page, total = await store.list_sessions(limit=2, offset=0)
    assert [s.id for s in page] == newest_first[:2] and total == 5
    page, total = await store.list_sessions(limit=2, offset=4)
    assert [s.id for s in page] == newest_first[4:] and total == 5
    page, total = await store.list_sessions(limit=10, offset=5)
    assert page == [] and total == 5
    page, total = await store.list_sessions(limit=0, offset=0)
    assert page == [] and total == 5


async def test_list_sessions_breaks_updated_at_ties_by_id_desc(store: Store) -> None:
    ids = [await new_session(store, id=f"ses_{name}") for name in ("b", "c", "a")]
    page, _ = await store.list_sessions(limit=10, offset=0)
    assert [s.id for s in page] == sorted(ids, reverse=True)


async def test_list_sessions_on_empty_store(store: Store) -> None:
    assert await store.list_sessions(limit=10, offset=0) == ([], 0)


async def test_update_session_sets_given_fields_and_moves_it_to_the_front(store: Store) -> None:
    older = await new_session(store, created=0, title="old", model="openai/gpt-4o")
    newer = await new_session(store, created=1)

    updated = await store.update_session(older, title="renamed")
    assert updated.title == "renamed" and updated.model == "openai/gpt-4o"
    assert updated.updated_at > at(1) and updated.created_at == at(0)
    assert await store.get_session(older) == updated
    page, _ = await store.list_sessions(limit=10, offset=0)
    assert [s.id for s in page] == [older, newer]

    updated = await store.update_session(newer, model="anthropic/claude-haiku")
    assert (updated.title, updated.model) == ("New session", "anthropic/claude-haiku")
    page, _ = await store.list_sessions(limit=10, offset=0)
    assert [s.id for s in page] == [newer, older]


async def test_add_message_bumps_the_session_to_the_front(store: Store) -> None:
    older = await new_session(store, created=0)
    newer = await new_session(store, created=1)
    await store.add_message(message_record(older))
    page, _ = await store.list_sessions(limit=10, offset=0)
    assert [s.id for s in page] == [older, newer]
    assert page[0].updated_at > at(1)


async def test_delete_session_removes_everything_it_owns(store: Store) -> None:
    doomed, kept = await new_session(store), await new_session(store)
    for session_id in (doomed, kept):
        message_ids = await fill(store, session_id, 3)
        await store.set_todos(session_id, [{"content": "x", "status": "pending"}])
        await store.add_question(question_record(session_id, message_ids[0]))
        await store.record_step_usage(session_id, model="m", usage=empty_usage(), cost=0.5)
    doomed_messages, _ = await store.list_messages(doomed, limit=None, offset=0, order="asc")
    doomed_question = (await store.list_questions(session_id=doomed))[0]

    assert await store.delete_session(doomed) is True

    assert await store.get_session(doomed) is None
    assert all([await store.get_message(m.id) is None for m in doomed_messages])
    assert await store.list_messages(doomed, limit=None, offset=0, order="asc") == ([], 0)
    assert await store.get_todos(doomed) == []
    assert await store.get_question(doomed_question.id) is None
    assert await store.model_usage(doomed) == []
    assert await store.list_sessions(limit=10, offset=0) == ([await store.get_session(kept)], 1)
    assert (await store.list_messages(kept, limit=None, offset=0, order="asc"))[1] == 3
    assert len(await store.list_questions(session_id=kept)) == 1
    assert await store.delete_session(doomed) is False


async def test_delete_unknown_session_is_false(store: Store) -> None:
    assert await store.delete_session("ses_missing") is False


# owners


async def test_the_owner_is_stored_and_read_back(store: Store) -> None:
    owned = session_record(user_id=ALICE)
    unowned = session_record(created=1)
    for record in (owned, unowned):
        assert await store.create_session(record) == record
        assert await store.get_session(record.id) == record
    assert (await store.get_session(unowned.id)).user_id is None
    renamed = await store.update_session(owned.id, title="renamed", model="m/x")
    assert renamed.user_id == ALICE
    await store.add_message(message_record(owned.id))
    page, _ = await store.list_sessions(limit=10, offset=0)
    assert [(s.id, s.user_id) for s in page] == [(owned.id, ALICE), (unowned.id, None)]


async def test_list_sessions_of_one_owner_pages_newest_first_with_their_total(
    store: Store,
) -> None:
    owners = [ALICE, BOB, ALICE, None, ALICE, BOB, ALICE, ALICE]
    ids = [await new_session(store, created=i, user_id=o) for i, o in enumerate(owners)]
    alice = [i for i, o in zip(ids, owners, strict=True) if o == ALICE][::-1]

    seen = []
    for offset in (0, 2, 4):
        page, total = await store.list_sessions(limit=2, offset=offset, user_id=ALICE)
        assert total == 5 and {s.user_id for s in page} == {ALICE}
        seen += [s.id for s in page]
    assert seen == alice
    for offset in (5, 50):  # at and past the end: no rows, the owner's total still
        assert await store.list_sessions(limit=2, offset=offset, user_id=ALICE) == ([], 5)
    assert await store.list_sessions(limit=0, offset=0, user_id=ALICE) == ([], 5)
    page, total = await store.list_sessions(limit=10, offset=0, user_id=BOB)
    assert [s.id for s in page] == [ids[5], ids[1]] and total == 2
    assert await store.list_sessions(limit=10, offset=0, user_id=LOCAL_USER_ID) == ([], 0)

    page, total = await store.list_sessions(limit=10, offset=0)  # no owner named: everyone's
    assert [s.id for s in page] == ids[::-1] and total == 8

    await store.add_message(message_record(alice[-1]))  # the oldest moves to the front
    page, _ = await store.list_sessions(limit=1, offset=0, user_id=ALICE)
    assert [s.id for s in page] == [alice[-1]]
    page, _ = await store.list_sessions(limit=1, offset=0, user_id=BOB)
    assert [s.id for s in page] == [ids[5]]


async def test_an_owners_sessions_break_updated_at_ties_by_id_desc(store: Store) -> None:
    for name in ("b", "d", "a", "c"):
        await new_session(store, id=f"ses_{name}", user_id=BOB if name == "c" else ALICE)
    page, total = await store.list_sessions(limit=10, offset=0, user_id=ALICE)
    assert [s.id for s in page] == ["ses_d", "ses_b", "ses_a"] and total == 3


async def test_list_questions_of_one_owner(store: Store) -> None:
    mine, also_mine, theirs = [await new_session(store, user_id=o) for o in (ALICE, ALICE, BOB)]
    nobodys = await new_session(store)
    records = {
        "late": question_record(mine, "m", created=40),
        "early": question_record(also_mine, "m", created=10),
        "bob": question_record(theirs, "m", created=20),
        "middle": question_record(mine, "m", created=30),
        "nobody": question_record(nobodys, "m", created=5),
        "answered": question_record(mine, "m", created=1, status="answered", answers=[["a"]]),
    }
    for record in records.values():
        await store.add_question(record)

    def ids(*names: str) -> list[str]:
        return [records[name].id for name in names]

    alices = await store.list_questions(user_id=ALICE)
    assert [q.id for q in alices] == ids("early", "middle", "late")
    assert await store.list_questions(user_id=BOB) == [records["bob"]]
    assert await store.list_questions(user_id=LOCAL_USER_ID) == []
    mine_only = await store.list_questions(session_id=mine, user_id=ALICE)
    assert [q.id for q in mine_only] == ids("middle", "late")
    assert await store.list_questions(session_id=theirs, user_id=ALICE) == []
    everyone = await store.list_questions()
    assert [q.id for q in everyone] == ids("nobody", "early", "bob", "middle", "late")

    assert await store.resolve_question(records["early"].id, status="rejected")
    assert [q.id for q in await store.list_questions(user_id=ALICE)] == ids("middle", "late")


# messages


async def test_add_message_assigns_seq_and_round_trips(store: Store) -> None:
    session_id = await new_session(store)
    first = await store.add_message(message_record(session_id, seq=99))
    record = message_record(
        session_id,
        created=1.000001,
        role="assistant",
        status="running",
        parts=UNICODE_PARTS,
        content="ünïcödé 🚀",
        parent_id=first.id,
        model="openai/gpt-4o",
        usage={"input_tokens": 10, "output_tokens": 5},
        cost=0.1 + 0.2,
        error="partial ⚠",
    )
    stored = await store.add_message(record)

    assert first.seq == 1 and stored.seq == 2
    assert stored == replace(record, seq=2)
    assert await store.get_message(stored.id) == stored
    assert (await store.get_session(session_id)).message_count == 2


async def test_add_message_to_unknown_session_raises_key_error(store: Store) -> None:
    record = message_record("ses_missing")
    with pytest.raises(KeyError):
        await store.add_message(record)
    assert await store.get_message(record.id) is None


async def test_get_unknown_message_is_none(store: Store) -> None:
    assert await store.get_message("msg_missing") is None
    assert await store.update_message("msg_missing", status="completed") is None


async def test_update_message_changes_only_given_fields(store: Store) -> None:
    session_id = await new_session(store)
    stored = await store.add_message(message_record(session_id, status="running", cost=0.25))

    updated = await store.update_message(stored.id, parts=UNICODE_PARTS, content="done ✓")
    assert updated.parts == UNICODE_PARTS and updated.content == "done ✓"
    assert (updated.status, updated.cost, updated.seq) == ("running", 0.25, 1)
    assert updated.created_at == stored.created_at and updated.updated_at > stored.updated_at

    usage = {key: index + 1 for index, key in enumerate(USAGE_KEYS)}
    final = await store.update_message(
        stored.id, status="error", model="m/x", usage=usage, cost=1e-7, error="boom"
    )
    assert (final.status, final.model, final.usage, final.cost, final.error) == (
        "error",
        "m/x",
        usage,
        1e-7,
        "boom",
    )
    assert final.parts == UNICODE_PARTS and final.content == "done ✓"
    assert await store.get_message(stored.id) == final


def expected_seqs(total: int, limit: int | None, offset: int, order: str) -> list[int]:
    seqs = list(range(1, total + 1))
    if order == "desc":
        seqs.reverse()
    return seqs[offset:] if limit is None else seqs[offset : offset + limit]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize(
    ("limit", "offset"),
    [
        (3, 0),
        (3, 3),
        (3, 6),
        (3, 7),
        (3, 8),
        (10, 0),
        (0, 0),
        (0, 3),
        (None, 0),
        (None, 5),
        (None, 7),
        (None, 20),
        (1, 6),
        (7, 0),
    ],
)
async def test_list_messages_pages(store: Store, limit: int | None, offset: int, order) -> None:
    session_id = await new_session(store)
    other = await new_session(store)
    for _ in range(7):  # interleave another session's messages
        await store.add_message(message_record(session_id))
        await store.add_message(message_record(other))

    page, total = await store.list_messages(session_id, limit=limit, offset=offset, order=order)

    assert total == 7
    assert [m.seq for m in page] == expected_seqs(7, limit, offset, order)
    assert {m.session_id for m in page} <= {session_id}


async def test_list_messages_pages_cover_the_conversation_once(store: Store) -> None:
    session_id = await new_session(store)
    ids = await fill(store, session_id, 10)
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        seen = []
        for offset in range(0, 10, 4):
            page, _ = await store.list_messages(session_id, limit=4, offset=offset, order=order)
            seen += [m.id for m in page]
        assert seen == expected


async def test_list_messages_of_unknown_or_empty_session(store: Store) -> None:
    assert await store.list_messages("ses_missing", limit=5, offset=0, order="asc") == ([], 0)
    session_id = await new_session(store)
    for order in ("asc", "desc"):
        assert await store.list_messages(session_id, limit=None, offset=0, order=order) == ([], 0)


async def test_negative_limit_or_offset_is_rejected(store: Store) -> None:
    session_id = await new_session(store)
    with pytest.raises(ValueError):
        await store.list_messages(session_id, limit=-1, offset=0, order="asc")
    with pytest.raises(ValueError):
        await store.list_messages(session_id, limit=1, offset=-1, order="desc")
    with pytest.raises(ValueError):
        await store.list_sessions(limit=-1, offset=0)


async def test_concurrent_add_message_gives_dense_seq(store: Store) -> None:
    session_id = await new_session(store)
    records = [message_record(session_id) for _ in range(50)]

    stored = await asyncio.gather(*(store.add_message(record) for record in records))

    assert sorted(m.seq for m in stored) == list(range(1, 51))
    page, total = await store.list_messages(session_id, limit=None, offset=0, order="asc")
    assert total == 50 and (await store.get_session(session_id)).message_count == 50
    assert [m.seq for m in page] == list(range(1, 51))
    assert {m.id: m.seq for m in page} == {m.id: m.seq for m in stored}


# usage and cost


AWKWARD_COSTS = [0.1, 0.2, 1e-7, 0.3, 1 / 3, 1e-7, 2.675, 1e-12, 0.7, 123.456, 1e-7, 0.1]


async def test_total_cost_is_the_float_sum_in_call_order(store: Store) -> None:
    session_id = await new_session(store)
    expected_total, expected_by_model = 0.0, {"a": 0.0, "b": 0.0}
    for index, cost in enumerate(AWKWARD_COSTS):
        model = "ab"[index % 2]
        await store.record_step_usage(session_id, model=model, usage=empty_usage(), cost=cost)
        expected_total += cost
        expected_by_model[model] += cost
    # The costs are awkward enough that another summation order would give another float.
    assert expected_total != math.fsum(AWKWARD_COSTS)
    assert expected_total != sum(sorted(AWKWARD_COSTS))

    assert (await store.get_session(session_id)).total_cost == expected_total
    page, _ = await store.list_sessions(limit=1, offset=0)
    assert page[0].total_cost == expected_total
    by_model = {row.model: row.cost for row in await store.model_usage(session_id)}
    assert by_model == expected_by_model


async def test_record_step_usage_sums_tokens_per_session_and_model(store: Store) -> None:
    session_id = await new_session(store)
    steps = [
        ("openai/gpt-4o", {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 50}),
        ("anthropic/claude", {key: 1 for key in USAGE_KEYS}),
        ("openai/gpt-4o", {"input_tokens": 7, "reasoning_tokens": 3}),
    ]
    for model, usage in steps:
        await store.record_step_usage(session_id, model=model, usage=usage, cost=0.5)

    session = await store.get_session(session_id)
    assert session.usage == {
        "input_tokens": 108,
        "output_tokens": 21,
        "reasoning_tokens": 4,
        "cache_read_tokens": 51,
        "cache_write_tokens": 1,
    }
    assert session.total_cost == 1.5
    rows = await store.model_usage(session_id)
    assert [(r.model, r.steps, r.cost) for r in rows] == [
        ("openai/gpt-4o", 2, 1.0),
        ("anthropic/claude", 1, 0.5),
    ]
    assert rows[0].usage == {
        "input_tokens": 107,
        "output_tokens": 20,
        "reasoning_tokens": 3,
        "cache_read_tokens": 50,
        "cache_write_tokens": 0,
    }
    assert rows[1].usage == dict.fromkeys(USAGE_KEYS, 1)


async def test_record_step_usage_on_unknown_session_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.record_step_usage("ses_missing", model="m", usage=empty_usage(), cost=1.0)
    assert await store.model_usage("ses_missing") == []


async def test_concurrent_step_usage_is_not_lost(store: Store) -> None:
    session_id = await new_session(store)
    usage = {"input_tokens": 1}
    await asyncio.gather(
        *(store.record_step_usage(session_id, model="m", usage=usage, cost=1.0) for _ in range(30))
    )
    session = await store.get_session(session_id)
    assert (session.total_cost, session.usage["input_tokens"]) == (30.0, 30)
    assert (await store.model_usage(session_id))[0].steps == 30


# todos


async def test_todos_round_trip_and_replace(store: Store) -> None:
    session_id = await new_session(store)
    assert await store.get_todos(session_id) == []
    todos = [
        {"id": "1", "content": "Écrire les tests ✅", "status": "in_progress", "priority": "high"},
        {"id": "2", "content": "写文档", "status": "pending", "meta": {"n": [1, None]}},
    ]
    await store.set_todos(session_id, todos)
    assert await store.get_todos(session_id) == todos
    await store.set_todos(session_id, todos[1:])
    assert await store.get_todos(session_id) == todos[1:]
    await store.set_todos(session_id, [])
    assert await store.get_todos(session_id) == []


async def test_todos_of_unknown_session(store: Store) -> None:
    assert await store.get_todos("ses_missing") == []
    with pytest.raises(KeyError):
        await store.set_todos("ses_missing", [{"content": "x"}])


# questions


async def test_question_round_trip(store: Store) -> None:
    session_id = await new_session(store)
    questions = [{"question": "Quelle couleur? 🎨", "options": ["rouge", "蓝色"], "multiple": True}]
    record = question_record(session_id, "msg_1", questions=questions, created=2.5)
    await store.add_question(record)
    assert await store.get_question(record.id) == record
    assert await store.get_question("que_missing") is None


async def test_add_question_to_unknown_session_raises_key_error(store: Store) -> None:
    record = question_record("ses_missing", "msg_1")
    with pytest.raises(KeyError):
        await store.add_question(record)
    assert await store.get_question(record.id) is None


async def test_list_questions_pending_oldest_first(store: Store) -> None:
    first, second = await new_session(store), await new_session(store)
    late = question_record(first, "m", created=30)
    early = question_record(second, "m", created=10)
    middle = question_record(first, "m", created=20)
    answered = question_record(first, "m", created=5, status="answered", answers=[["a"]])
    for record in (late, early, middle, answered):
        await store.add_question(record)

    assert [q.id for q in await store.list_questions()] == [early.id, middle.id, late.id]
    assert [q.id for q in await store.list_questions(session_id=first)] == [middle.id, late.id]
    assert await store.list_questions(session_id="ses_missing") == []


async def test_resolve_question_only_moves_pending(store: Store) -> None:
    session_id = await new_session(store)
    record = question_record(session_id, "m")
    await store.add_question(record)

    assert await store.resolve_question(record.id, status="answered", answers=[["b", "ü"]])
    resolved = await store.get_question(record.id)
    assert (resolved.status, resolved.answers) == ("answered", [["b", "ü"]])
    assert await store.list_questions() == []

    assert not await store.resolve_question(record.id, status="rejected")
    assert (await store.get_question(record.id)).status == "answered"
    assert not await store.resolve_question("que_missing", status="answered", answers=[])


async def test_resolve_question_without_answers(store: Store) -> None:
    session_id = await new_session(store)
    record = question_record(session_id, "m")
    await store.add_question(record)
    assert await store.resolve_question(record.id, status="rejected")
    assert (await store.get_question(record.id)).answers is None


async def test_concurrent_resolves_have_one_winner(store: Store) -> None:
    session_id = await new_session(store)
    record = question_record(session_id, "m")
    await store.add_question(record)
    results = await asyncio.gather(
        *(
            store.resolve_question(record.id, status="answered", answers=[[str(i)]])
            for i in range(10)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert (await store.get_question(record.id)).answers == [[str(winner)]]


# recovery after a crash


async def test_fail_running_messages(store: Store) -> None:
    first, second = await new_session(store), await new_session(store)
    running = [
        await store.add_message(message_record(first, status="running", role="assistant")),
        await store.add_message(message_record(second, status="running", role="assistant")),
    ]
    done = await store.add_message(message_record(first, status="completed"))
    aborted = await store.add_message(message_record(second, status="aborted"))

    failed = await store.fail_running_messages("server restarted")

    assert sorted(m.id for m in failed) == sorted(m.id for m in running)
    assert all(m.status == "error" and m.error == "server restarted" for m in failed)
    for message in running:
        stored = await store.get_message(message.id)
        assert (stored.status, stored.error, stored.seq) == ("error", "server restarted", 1)
        assert stored.parts == message.parts and stored.updated_at > message.updated_at
    assert await store.get_message(done.id) == done
    assert await store.get_message(aborted.id) == aborted
    assert await store.fail_running_messages("again") == []


async def test_expire_pending_questions(store: Store) -> None:
    session_id = await new_session(store)
    pending = [question_record(session_id, "m", created=i) for i in range(3)]
    answered = question_record(session_id, "m", status="answered", answers=[["x"]])
    for record in (*pending, answered):
        await store.add_question(record)

    assert await store.expire_pending_questions() == 3

    assert await store.list_questions() == []
    assert all([(await store.get_question(q.id)).status == "expired" for q in pending])
    assert (await store.get_question(answered.id)).status == "answered"
    assert not await store.resolve_question(pending[0].id, status="answered", answers=[])
    assert await store.expire_pending_questions() == 0


async def test_sessions_sort_by_instant_whatever_offset_they_were_given_in(store: Store) -> None:
    earlier = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # 10:00 UTC
    later = datetime(2024, 1, 1, 11, 0, 0, 1, tzinfo=UTC)
    same_second = datetime(2024, 1, 1, 11, 0, 0, tzinfo=UTC)
    # ids sort the other way round, so a tie-break on id cannot make this pass
    for session_id, moment in (("ses_a", later), ("ses_b", same_second), ("ses_c", earlier)):
        await store.create_session(session_record(id=session_id, updated_at=moment))
    page, _ = await store.list_sessions(limit=10, offset=0)
    assert [s.id for s in page] == ["ses_a", "ses_b", "ses_c"]
