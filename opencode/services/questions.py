"""Questions the agent asks the user: stored, announced, and awaited until answered.

A pending question lives in the store (so ``GET /question`` lists it after a client reconnects)
and as a future here (so a reply resumes the waiting tool at once).
"""

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from opencode.core.errors import Conflict, NotFound, OpencodeError
from opencode.core.ids import new_id, utc_now
from opencode.core.users import Caller
from opencode.events.bus import EventBus
from opencode.schemas.questions import QuestionOut
from opencode.services.views import question_out
from opencode.storage.base import QuestionRecord, QuestionStatus, Store
from opencode.tools.base import ToolError


class QuestionBroker:
    def __init__(self, store: Store, bus: EventBus, *, timeout: float) -> None:
        self._store = store
        self._bus = bus
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[list[list[str]]]] = {}

    async def ask(
        self,
        *,
        session_id: str,
        message_id: str,
        call_id: str,
        questions: list[dict[str, Any]],
        on_asked: Callable[[QuestionRecord], None],
    ) -> list[list[str]]:
        record = QuestionRecord(
            id=new_id("que"),
            session_id=session_id,
            message_id=message_id,
            call_id=call_id,
            questions=questions,
            created_at=utc_now(),
        )
        future: asyncio.Future[list[list[str]]] = asyncio.get_running_loop().create_future()
        self._waiting[record.id] = future
        try:
            await self._store.add_question(record)
            on_asked(record)
            self._bus.publish("question.asked", **_question_props(record))
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            await self._close(record, "expired")
            raise ToolError(f"The user did not answer within {self._timeout:g} seconds.") from None
        except asyncio.CancelledError:
            await asyncio.shield(self._close(record, "rejected"))
            raise
        finally:
            self._waiting.pop(record.id, None)

    async def reply(
        self, question_id: str, answers: list[list[str]], *, caller: Caller
    ) -> QuestionOut:
        record = await self._pending(question_id, caller)
        if len(answers) != len(record.questions):
            raise OpencodeError(
                f"Question {question_id} has {len(record.questions)} question(s) but "
                f"{len(answers)} answer list(s) were sent; send one list of answers per question.",
                status_code=422,
            )
        await self._resolve(record, "answered", answers)
        future = self._waiting.get(question_id)
        if future is not None and not future.done():
            future.set_result(answers)
        return question_out(replace(record, status="answered", answers=answers))

    async def reject(self, question_id: str, *, caller: Caller) -> QuestionOut:
        record = await self._pending(question_id, caller)
        await self._resolve(record, "rejected", None)
        future = self._waiting.get(question_id)
        if future is not None and not future.done():
            future.set_exception(ToolError("The user dismissed this question."))
        return question_out(replace(record, status="rejected"))

    async def list_pending(
        self, session_id: str | None = None, *, owner: str | None = None
    ) -> list[QuestionOut]:
        """Pending questions, oldest first: ``owner``'s only (everyone's for None)."""
        records = await self._store.list_questions(session_id=session_id, user_id=owner)
        return [question_out(record) for record in records]

    async def _pending(self, question_id: str, caller: Caller) -> QuestionRecord:
        """The pending question; another user's answers 404 like one that does not exist."""
        record = await self._store.get_question(question_id)
        session = record and await self._store.get_session(record.session_id)
        if record is None or session is None or not caller.may_see(session.user_id):
            raise NotFound(f"No question with id {question_id}.")
        if record.status != "pending" or question_id not in self._waiting:
            raise Conflict(f"Question {question_id} is no longer pending (it is {record.status}).")
        return record

    async def _resolve(
        self, record: QuestionRecord, status: QuestionStatus, answers: list[list[str]] | None
    ) -> None:
        if not await self._store.resolve_question(record.id, status=status, answers=answers):
            raise Conflict(f"Question {record.id} was answered or dismissed already.")
        self._bus.publish(f"question.{status}", **_question_props(record), answers=answers)

    async def _close(self, record: QuestionRecord, status: QuestionStatus) -> None:
        if await self._store.resolve_question(record.id, status=status):
            self._bus.publish(f"question.{status}", **_question_props(record))


def _question_props(record: QuestionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "session_id": record.session_id,
        "message_id": record.message_id,
        "tool_call_id": record.call_id,
        "questions": record.questions,
    }
