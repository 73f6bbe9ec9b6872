"""The agent loop's ``ContextKeeper`` for one run: when to compact, and what to prune.

Before each model call it checks the triggers (too many messages since the last summary, or the
last step's prompt too close to the context window), asks the ``Compactor`` to fold, and prunes
old tool outputs from the request. A failed compaction is recorded and announced by the
compactor; the run goes on with the full context.
"""

from opencode.agent.compaction import prune_tool_outputs
from opencode.core.errors import OpencodeError
from opencode.events import codex_items
from opencode.llm.types import ChatMessage, ModelClient, Usage
from opencode.services.compaction import Compactor, Context, Emit
from opencode.services.providers import ResolvedModel
from opencode.services.run_items import log_items
from opencode.storage.base import CompactionTrigger, MessageRecord


class RunContext:
    """The ``ContextKeeper`` of one run: compacts at most once per trigger (and once more if the
    provider still finds the prompt too long), prunes every step."""

    def __init__(
        self,
        compactor: Compactor,
        *,
        model: ResolvedModel,
        context: Context,
        user_message: MessageRecord,
        user_id: str,
        emit: Emit,
        client: ModelClient | None = None,
    ) -> None:
        self._compactor = compactor
        self._client = client  # the run's: a summary's retries show in the run's stream
        self._model = model
        self._user = user_message
        self._user_id = user_id  # who pays for the summaries
        self._emit = emit
        self._before_turn = len(context.messages())  # the loop's messages before this turn's
        self._stored_since = len(context.records) + 1  # the new user message counts
        self._last_prompt = context.last_prompt_tokens()
        self._window = compactor.window(model)
        self._tried: set[str] = set()

    async def prepare(
        self, messages: list[ChatMessage], step_number: int, last_step: Usage | None
    ) -> list[ChatMessage]:
        trigger = self._trigger(step_number, last_step)
        if trigger is not None and trigger not in self._tried:
            self._tried.add(trigger)
            compacted = await self._compact(messages, trigger, self._keep(trigger, step_number))
            messages = compacted or messages
        budget = self._compactor.policy.prune_budget(self._window)
        return prune_tool_outputs(messages, budget_tokens=budget)

    async def shrink(self, messages: list[ChatMessage]) -> list[ChatMessage] | None:
        """The provider refused the prompt as too long: fold every earlier message, and prune
        tool outputs to a quarter of the usual budget. Once per run."""
        if "overflow" in self._tried:
            return None
        self._tried.add("overflow")
        compacted = await self._compact(messages, "tokens", keep=0)
        budget = self._compactor.policy.prune_budget(self._window) // 4
        smaller = prune_tool_outputs(compacted or messages, budget_tokens=budget)
        return smaller if compacted is not None or smaller != messages else None

    def _trigger(self, step_number: int, last_step: Usage | None) -> CompactionTrigger | None:
        policy = self._compactor.policy
        prompt = self._last_prompt if step_number == 1 else (last_step and last_step.input_tokens)
        if step_number == 1 and self._stored_since > policy.max_messages:
            return "messages"
        if prompt and prompt > policy.ratio * self._window:
            return "tokens"
        return None

    def _keep(self, trigger: CompactionTrigger, step_number: int) -> int:
        """How many earlier messages stay verbatim. A prompt near the window needs a deep cut:
        only the last exchange survives, and none once this turn's own steps are that big."""
        if trigger == "messages":
            return self._compactor.policy.keep_messages
        return 2 if step_number == 1 else 0

    async def _compact(
        self, messages: list[ChatMessage], trigger: CompactionTrigger, keep: int
    ) -> list[ChatMessage] | None:
        """The loop's messages with the earlier ones folded, or ``None`` if that failed."""
        try:
            after = await self._compactor.compact(
                self._user.session_id,
                self._model,
                user_id=self._user_id,
                trigger=trigger,
                keep_messages=keep,
                before_seq=self._user.seq,
                emit=self._emit,
                client=self._client,
                turn_id=self._user.id,
            )
        except OpencodeError:  # recorded and announced; go on with the full context
            return None
        if after.summary_record is not None:
            summary = after.summary_record
            log_items(self._emit, self._user.id, lambda: codex_items.message_items(summary))
        compacted = after.messages()
        this_turn = messages[self._before_turn :]
        self._before_turn = len(compacted)
        return compacted + this_turn
