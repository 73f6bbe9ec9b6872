"""QuestionBroker over a real SQLite store: answer, dismiss, time out, cancel."""

import asyncio

import pytest

from opencode.core.errors import Conflict, NotFound, OpencodeError
from opencode.core.ids import utc_now
from opencode.core.users import LOCAL_CALLER, LOCAL_USER_ID
from opencode.events.bus import EventBus
from opencode.services.questions import QuestionBroker
from opencode.storage.base import QuestionRecord, SessionRecord
from opencode.storage.sqlite import SqliteStore
from opencode.tools.base import ToolError

QUESTIONS = [{"question": "A or B?", "header": "Pick", "options": [], "multiple": False}]


@pytest.fixture
async def store(tmp_path):
    store = SqliteStore(str(tmp_path / "q.db"))
    await store.initialize()
    now = utc_now()
    await store.create_session(
        SessionRecord(id="ses_1", title="t", created_at=now, updated_at=now, user_id=LOCAL_USER_ID)
    )
    yield store
    await store.close()


def broker_for(store, timeout=5.0):
    bus = EventBus()
    return QuestionBroker(store, bus, timeout=timeout), bus


async def ask(broker, asked: list[QuestionRecord]):
    return await broker.ask(
        session_id="ses_1",
        message_id="msg_1",
        call_id="call_1",
        questions=QUESTIONS,
        on_asked=asked.append,
    )


async def asked(broker) -> tuple[asyncio.Task, QuestionRecord]:
    """Start ``ask`` in a task; return the task and its question once that is pending."""
    questions: list[QuestionRecord] = []
    waiting = asyncio.create_task(ask(broker, questions))
    while not questions:
        if waiting.done():
            raise AssertionError(f"ask returned {await waiting!r} without asking")
        await asyncio.sleep(0.01)
    return waiting, questions[0]


async def test_reply_resumes_the_waiting_tool(store):
    broker, bus = broker_for(store)
    waiting, question = await asked(broker)
    pending = await broker.list_pending()
    assert [q.id for q in pending] == [question.id]
    with pytest.raises(OpencodeError) as wrong_count:
        await broker.reply(question.id, [["A"], ["B"]], caller=LOCAL_CALLER)
    assert wrong_count.value.status_code == 422
    await broker.reply(question.id, [["B"]], caller=LOCAL_CALLER)
    assert await waiting == [["B"]]
    assert await broker.list_pending() == []
    stored = await store.get_question(question.id)
    assert stored.status == "answered" and stored.answers == [["B"]]
    with pytest.raises(Conflict):
        await broker.reply(question.id, [["A"]], caller=LOCAL_CALLER)
    with pytest.raises(NotFound):
        await broker.reject("que_unknown", caller=LOCAL_CALLER)


async def test_reject_raises_a_tool_error(store):
    broker, _ = broker_for(store)
    waiting, question = await asked(broker)
    await broker.reject(question.id, caller=LOCAL_CALLER)
    with pytest.raises(ToolError, match="dismissed"):
        await waiting
    assert (await store.get_question(question.id)).status == "rejected"


async def test_timeout_expires_the_question(store):
    broker, _ = broker_for(store, timeout=0.2)
    questions: list[QuestionRecord] = []
    with pytest.raises(ToolError, match="did not answer"):
        await ask(broker, questions)
    assert (await store.get_question(questions[0].id)).status == "expired"
    with pytest.raises(Conflict):
        await broker.reply(questions[0].id, [["A"]], caller=LOCAL_CALLER)


async def test_cancelling_the_turn_closes_the_question(store):
    broker, _ = broker_for(store)
    waiting, question = await asked(broker)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await store.get_question(question.id)).status == "rejected"
    assert await broker.list_pending() == []
