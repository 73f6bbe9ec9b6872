"""The ``Store`` contract for compaction state (part of the contract suite: every backend)."""

from dataclasses import replace

import pytest

from opencode.storage.base import CompactionRecord, Store
from tests.storage.conftest import at, session_record


async def test_no_compaction_state_until_saved(store: Store) -> None:
    session = await store.create_session(session_record())
    assert await store.get_compaction(session.id) is None
    assert await store.get_compaction("ses_missing") is None


async def test_save_replaces_the_state_and_round_trips_every_field(store: Store) -> None:
    session = await store.create_session(session_record())
    running = CompactionRecord(session.id, "running", "messages", started_at=at(1))
    await store.save_compaction(running)
    assert await store.get_compaction(session.id) == running

    done = replace(
        running,
        status="completed",
        finished_at=at(2.5),
        messages_folded=42,
        tokens_before=90_000,
        tokens_after=8_000,
        summary_message_id="msg_summary",
        folded_through_seq=42,
        compactions=3,
    )
    await store.save_compaction(done)
    assert await store.get_compaction(session.id) == done

    failed = replace(done, status="failed", trigger="manual", error="provider down ü")
    await store.save_compaction(failed)
    assert await store.get_compaction(session.id) == failed


async def test_save_for_an_unknown_session_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.save_compaction(
            CompactionRecord("ses_missing", "running", "manual", started_at=at(0))
        )


async def test_fail_running_compactions_leaves_finished_ones(store: Store) -> None:
    running = await store.create_session(session_record())
    finished = await store.create_session(session_record())
    await store.save_compaction(CompactionRecord(running.id, "running", "tokens", at(0)))
    done = CompactionRecord(finished.id, "completed", "manual", at(0), finished_at=at(1))
    await store.save_compaction(done)

    assert await store.fail_running_compactions("server stopped") == 1
    failed = await store.get_compaction(running.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error == "server stopped" and failed.finished_at is not None
    assert await store.get_compaction(finished.id) == done
    assert await store.fail_running_compactions("again") == 0


async def test_deleting_the_session_deletes_its_compaction_state(store: Store) -> None:
    session = await store.create_session(session_record())
    await store.save_compaction(CompactionRecord(session.id, "completed", "manual", at(0)))
    assert await store.delete_session(session.id)
    assert await store.get_compaction(session.id) is None
