"""The draft writer: runs ask for writes without waiting, batches carry every reply that asked,
a reply is never in two writes at once, and nothing (text, a step's usage, a final status) is
lost when the store is slow, fails for a while, or refuses one reply of a batch.

Against a real SQLite store, seen through ``Watched``: a store that records each batch and can
hold it (so a write is "in flight" for as long as a test needs) or fail it.
"""

import asyncio
from collections.abc import Sequence

import pytest

from opencode.core.errors import OpencodeError
from opencode.llm.types import StepOutput, Usage
from opencode.services import draft_writer
from opencode.services.draft import Draft
from opencode.services.draft_writer import DraftWriter
from opencode.storage.base import DraftWrite, StepUsage
from opencode.storage.sqlite import SqliteStore
from tests.services.test_draft import new_message

STEP = StepUsage("openai/gpt-4o-mini", {"input_tokens": 10, "output_tokens": 2}, 0.5)


class Watched(SqliteStore):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.batches: list[list[str]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.failures = 0  # the next this many batches raise
        self.refuse: set[str] = set()  # batches holding one of these messages raise

    async def write_drafts(self, writes: Sequence[DraftWrite]) -> list[bool]:
        self.batches.append([write.message_id for write in writes])
        await self.hold.wait()
        if self.failures:
            self.failures -= 1
            raise OpencodeError("the database is down", status_code=503)
        if self.refuse & {write.message_id for write in writes}:
            raise OpencodeError("refused")
        return await super().write_drafts(writes)


@pytest.fixture
async def store(tmp_path):
    store = Watched(str(tmp_path / "writer.db"))
    await store.initialize()
    yield store
    await store.close()


@pytest.fixture
async def writer(store):
    writer = DraftWriter(store)
    writer.start()
    yield writer
    await writer.close()


async def reply(store, writer):
    session_id, message_id = await new_message(store)
    draft = Draft()
    return draft, writer.saver(session_id, message_id, draft)


async def settled(writer: DraftWriter) -> None:
    for _ in range(200):
        await asyncio.sleep(0.005)
        if not writer.backlog:
            await asyncio.sleep(0.02)
            return
    raise AssertionError("the writer never caught up")


async def test_requests_made_while_a_write_is_in_flight_go_in_one_next_batch(store, writer):
    (draft_a, a), (draft_b, b), (draft_c, c) = [await reply(store, writer) for _ in range(3)]
    store.hold.clear()
    draft_a.text("one ")
    a.soon()
    await asyncio.sleep(0.01)
    assert store.batches == [[a.message_id]]  # in flight, held
    for word in ("two ", "three"):
        draft_a.text(word)
        a.soon()  # asks again while its write is in flight: not a second write meanwhile
    draft_b.text("bee")
    b.soon()
    draft_c.text("sea")
    c.soon()
    store.hold.set()
    await settled(writer)
    assert store.batches == [[a.message_id], [a.message_id, b.message_id, c.message_id]]
    assert (await store.get_message(a.message_id)).content == "one two three"
    assert (await store.get_message(c.message_id)).parts == [{"type": "text", "text": "sea"}]


async def test_save_waits_for_the_store_and_sets_the_final_status(store, writer):
    draft, saver = await reply(store, writer)
    draft.text("partial")
    assert await saver.save(status="aborted") is True
    stored = await store.get_message(saver.message_id)
    assert (stored.status, stored.content) == ("aborted", "partial")


async def test_a_failing_store_loses_no_text_and_no_step(store, writer, monkeypatch):
    monkeypatch.setattr(draft_writer, "RETRY_DELAY", 0.02)
    draft, saver = await reply(store, writer)
    store.failures = 3
    draft.step_start(1)
    draft.text("kept")
    draft.step_finish(1, StepOutput("kept", (), (), "stop", Usage(10, 2), 0.5))
    saver.soon(STEP)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(store.batches) >= 4 and not writer.backlog:
            break
    assert len(store.batches) == 4  # three failures, then stored
    stored = await store.get_message(saver.message_id)
    assert stored.content == "kept" and stored.cost == 0.5
    session = await store.get_session(saver.session_id)
    assert (session.usage["input_tokens"], session.total_cost) == (10, 0.5)  # added once


async def test_an_awaited_write_reports_the_failure(store, writer):
    draft, saver = await reply(store, writer)
    store.failures = 1
    draft.text("x")
    with pytest.raises(OpencodeError, match="down"):
        await saver.save(status="completed")
    assert await saver.save(status="completed") is True  # the retry stores it all
    stored = await store.get_message(saver.message_id)
    assert (stored.status, stored.content) == ("completed", "x")


async def test_one_refused_reply_does_not_fail_the_others(store, writer, monkeypatch):
    monkeypatch.setattr(draft_writer, "RETRY_DELAY", 10.0)
    (draft_a, a), (draft_b, b) = [await reply(store, writer) for _ in range(2)]
    store.hold.clear()
    store.refuse = {a.message_id}
    draft_a.text("a")
    draft_b.text("b")
    a.soon()
    b.soon()
    store.hold.set()
    with pytest.raises(OpencodeError, match="refused"):
        await a.save()
    assert await b.save() is True
    assert (await store.get_message(b.message_id)).content == "b"


async def test_a_deleted_message_is_reported_and_its_steps_dropped(store, writer):
    draft, saver = await reply(store, writer)
    await store.delete_session(saver.session_id)
    draft.text("late")
    saver.soon(STEP)
    assert await saver.save(status="completed") is False


async def test_a_run_waits_at_a_step_boundary_when_the_writer_is_behind(
    store, writer, monkeypatch
):
    monkeypatch.setattr(draft_writer, "BEHIND", 0.05)
    draft, saver = await reply(store, writer)
    store.hold.clear()
    draft.text("x")
    await saver.step_boundary()  # not behind yet: returns at once
    await asyncio.sleep(0.1)
    waiting = asyncio.ensure_future(saver.step_boundary(STEP))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # back-pressure: the run waits for its write
    store.hold.set()
    await asyncio.wait_for(waiting, 2)
    await settled(writer)
    assert (await store.get_session(saver.session_id)).total_cost == 0.5


async def test_close_writes_what_is_pending(store):
    writer = DraftWriter(store)
    writer.start()
    draft, saver = await reply(store, writer)
    draft.text("last words")
    saver.soon()
    await writer.close()
    assert (await store.get_message(saver.message_id)).content == "last words"


class BrokenDraft(Draft):
    """A draft whose write cannot be prepared (a bug elsewhere), to see the writer survive."""

    def pending(self):
        raise ValueError("broken draft")


async def test_a_draft_that_cannot_be_written_does_not_stop_the_writer(store, writer):
    session_id, message_id = await new_message(store)
    broken = writer.saver(session_id, message_id, BrokenDraft())
    draft, fine = await reply(store, writer)
    draft.text("fine")
    with pytest.raises(ValueError, match="broken draft"):
        await broken.save(status="completed")
    assert await fine.save(status="completed") is True
    assert (await store.get_message(fine.message_id)).content == "fine"
