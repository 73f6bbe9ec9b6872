"""``question``: ask the user one or more questions mid-run and wait for the answers.

Asking, waiting, timing out and dismissal live behind ``ctx.questions`` (the ``QuestionAsker``
protocol, implemented by the service layer); a dismissed or timed-out question raises
``ToolError``, which goes back to the model as an error result.
"""

from pydantic import BaseModel, Field

from opencode.tools.base import Tool, ToolContext, ToolError

QUESTION_DESCRIPTION = """\
Ask the user questions while you work, and wait for the answers. Use it to:
1. gather preferences or requirements;
2. clarify ambiguous instructions;
3. get a decision between implementation choices;
4. offer choices about which direction to take.

Usage notes:
- Give options when the answer is a choice; leave options empty for a free-form answer.
- Do not add an "Other" option: the user can always type their own answer.
- Answers come back as lists of option labels (or the typed text); set multiple to true to \
let the user pick more than one option.
- If you recommend an option, put it first and end its label with "(Recommended)".
- Ask only what you cannot find out yourself."""


class QuestionOption(BaseModel):
    label: str = Field(min_length=1, description="Display text of the choice (1-5 words, concise).")
    description: str = Field("", description="Explanation of the choice.")


class QuestionItem(BaseModel):
    question: str = Field(min_length=1, description="The complete question.")
    header: str = Field(max_length=30, description="Very short label (max 30 chars).")
    options: list[QuestionOption] = Field(
        default_factory=list,
        max_length=10,
        description="Choices to offer (at most 10); empty for a free-form answer.",
    )
    multiple: bool = Field(False, description="Allow selecting more than one option.")


class QuestionParams(BaseModel):
    questions: list[QuestionItem] = Field(
        min_length=1, max_length=5, description="Questions to ask (1 to 5)."
    )


class Question(Tool):
    name = "question"
    description = QUESTION_DESCRIPTION
    Params = QuestionParams

    async def run(self, params: BaseModel, ctx: ToolContext) -> str:
        assert isinstance(params, QuestionParams)
        if ctx.questions is None:
            raise ToolError("Asking the user questions is not available in this session.")
        asked = [item.model_dump() for item in params.questions]
        answers = await ctx.questions.ask(ctx.call_id, asked)
        return format_answers(params.questions, answers)


def format_answers(questions: list[QuestionItem], answers: list[list[str]]) -> str:
    """The text opencode returns for answered questions; missing answers read "Unanswered"."""
    pairs = []
    for index, item in enumerate(questions):
        answer = answers[index] if index < len(answers) else []
        pairs.append(f'"{item.question}"="{", ".join(answer) if answer else "Unanswered"}"')
    return (
        f"User has answered your questions: {', '.join(pairs)}. "
        "You can now continue with the user's answers in mind."
    )
