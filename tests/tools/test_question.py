import asyncio
import json
from typing import Any

import pytest

from opencode.llm.types import ToolCall
from opencode.tools.base import ToolContext, ToolError
from opencode.tools.question import Question
from opencode.tools.registry import ToolRegistry


class ScriptedAsker:
    """``QuestionAsker`` that records what was asked and replies with scripted answers."""

    def __init__(self, answers: list[list[str]] | Exception) -> None:
        self.answers = answers
        self.asked: list[tuple[str, list[dict[str, Any]]]] = []

    async def ask(self, call_id: str, questions: list[dict[str, Any]]) -> list[list[str]]:
        self.asked.append((call_id, questions))
        if isinstance(self.answers, Exception):
            raise self.answers
        return self.answers


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register(Question())
    return registry


def context(asker: Any, call_id: str = "call_q") -> ToolContext:
    return ToolContext(session_id="ses_1", message_id="msg_1", call_id=call_id, questions=asker)


def ask(questions: list[dict[str, Any]], call_id: str = "call_q") -> ToolCall:
    return ToolCall(id=call_id, name="question", arguments=json.dumps({"questions": questions}))


DB = {
    "question": "Which database?",
    "header": "Database",
    "options": [{"label": "SQLite (Recommended)", "description": "Zero setup"}, {"label": "Pg"}],
}
FEATURES = {
    "question": "Which features?",
    "header": "Features",
    "options": [{"label": "Auth"}, {"label": "Billing"}],
    "multiple": True,
}
NAME = {"question": "Project name?", "header": "Name"}


async def test_question_asks_with_defaults_and_formats_answers(registry: ToolRegistry):
    asker = ScriptedAsker([["SQLite (Recommended)"], ["Auth", "Billing"], ["acme"]])

    result = await registry.execute(ask([DB, FEATURES, NAME]), context(asker))

    assert not result.is_error
    assert result.text == (
        'User has answered your questions: "Which database?"="SQLite (Recommended)", '
        '"Which features?"="Auth, Billing", "Project name?"="acme". '
        "You can now continue with the user's answers in mind."
    )
    [(call_id, questions)] = asker.asked
    assert call_id == "call_q"
    assert questions[0]["options"][1] == {"label": "Pg", "description": ""}
    assert questions[0]["multiple"] is False
    assert questions[2] == {
        "question": "Project name?",
        "header": "Name",
        "options": [],
        "multiple": False,
    }


async def test_missing_or_empty_answers_read_unanswered(registry: ToolRegistry):
    asker = ScriptedAsker([[]])
    result = await registry.execute(ask([DB, NAME]), context(asker))
    assert '"Which database?"="Unanswered", "Project name?"="Unanswered"' in result.text


async def test_dismissed_question_goes_back_to_the_model(registry: ToolRegistry):
    asker = ScriptedAsker(ToolError("The user dismissed the question."))
    result = await registry.execute(ask([NAME]), context(asker))
    assert result.is_error
    assert result.text == "The user dismissed the question."


async def test_question_needs_an_asker(registry: ToolRegistry):
    result = await registry.execute(ask([NAME]), context(None))
    assert result.is_error
    assert result.text == "Asking the user questions is not available in this session."


@pytest.mark.parametrize(
    ("questions", "problem"),
    [
        ([], "questions: List should have at least 1 item"),
        ([NAME] * 6, "questions: List should have at most 5 items"),
        ([{**NAME, "header": "x" * 31}], "questions[0].header: String should have at most 30"),
        ([{**DB, "options": [{"label": "a"}] * 11}], "questions[0].options: List should have"),
        ([{"header": "Name"}], "questions[0].question: Field required"),
    ],
)
async def test_invalid_questions_are_reported(
    registry: ToolRegistry, questions: list[dict[str, Any]], problem: str
):
    asker = ScriptedAsker([["never"]])
    result = await registry.execute(ask(questions), context(asker))
    assert result.is_error
    assert problem in result.text
    assert asker.asked == []


class GatedAsker:
    """Holds every question open until the test answers it, like a waiting user."""

    def __init__(self) -> None:
        self.pending: dict[str, asyncio.Future[list[list[str]]]] = {}
        self.arrived = asyncio.Event()

    async def ask(self, call_id: str, questions: list[dict[str, Any]]) -> list[list[str]]:
        self.pending[call_id] = asyncio.get_running_loop().create_future()
        self.arrived.set()
        return await self.pending[call_id]


async def test_concurrent_questions_get_their_own_answers(registry: ToolRegistry):
    asker = GatedAsker()
    calls = [
        asyncio.create_task(registry.execute(ask([NAME], f"call_{i}"), context(asker, f"call_{i}")))
        for i in range(3)
    ]
    while len(asker.pending) < 3:
        await asker.arrived.wait()
        asker.arrived.clear()

    for i in reversed(range(3)):
        asker.pending[f"call_{i}"].set_result([[f"name {i}"]])
    results = await asyncio.gather(*calls)

    assert [r.text.split('"')[3] for r in results] == ["name 0", "name 1", "name 2"]


async def test_cancelling_a_waiting_question_propagates(registry: ToolRegistry):
    asker = GatedAsker()
    task = asyncio.create_task(registry.execute(ask([NAME]), context(asker)))
    await asker.arrived.wait()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert asker.pending["call_q"].cancelled()
