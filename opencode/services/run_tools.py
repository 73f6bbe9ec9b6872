"""What the tools of one run can reach: the session's todos, and the user through questions."""

from typing import Any

from opencode.llm.types import ToolCall
from opencode.schemas.events import QuestionEvent
from opencode.services.questions import QuestionBroker
from opencode.services.run import Run
from opencode.services.todos import TodoService
from opencode.tools.base import ToolContext


class RunTools:
    """What tools of one run can reach: the session's todos and the user, via questions."""

    def __init__(self, run: Run, todos: TodoService, questions: QuestionBroker) -> None:
        self._run = run
        self._todos = todos.for_session(run.session_id)
        self._questions = questions

    def context_for(self, call: ToolCall) -> ToolContext:
        return ToolContext(
            session_id=self._run.session_id,
            message_id=self._run.message_id,
            call_id=call.id,
            todos=self._todos,
            questions=self,
        )

    async def ask(self, call_id: str, questions: list[dict[str, Any]]) -> list[list[str]]:
        def announce(record: Any) -> None:
            self._run.emit(
                QuestionEvent(question_id=record.id, tool_call_id=call_id, questions=questions)
            )

        return await self._questions.ask(
            session_id=self._run.session_id,
            message_id=self._run.message_id,
            call_id=call_id,
            questions=questions,
            on_asked=announce,
        )
