"""Compaction: fold a session's oldest messages into a model-written summary.

``Compactor`` owns the state (``compactions`` table), what the model sees of a session
(``Context``: the summary in force, then the messages after what it folded), the summary call
and its events. ``services/run_context.py`` decides when a run compacts. Stored messages are
never changed: the summary is a new message, stored where the compaction happened.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from opencode.agent.compaction import (
    SUMMARY_PROMPT,
    estimate_tokens,
    is_summary,
    plan_fold,
    summary_message,
    summary_request,
)
from opencode.agent.history import build_history
from opencode.core.errors import Conflict, OpencodeError, UpstreamError
from opencode.core.ids import new_id, utc_now
from opencode.events.bus import EventBus
from opencode.llm.complete import complete
from opencode.llm.types import (
    ChatMessage,
    ModelClient,
    ModelRequest,
    ProviderError,
    StepOutput,
)
from opencode.schemas.events import CompactionEvent, StreamEvent
from opencode.schemas.sessions import CompactionStatusOut
from opencode.services.providers import ProviderCatalog, ResolvedModel
from opencode.services.quota import QuotaExceeded, QuotaService
from opencode.services.records import new_message, require_session
from opencode.services.views import compaction_status_out
from opencode.storage.base import CompactionRecord, CompactionTrigger, MessageRecord, Store

log = logging.getLogger(__name__)

INTERRUPTED = "Interrupted: the server stopped while compacting."
Emit = Callable[[StreamEvent], None]


@dataclass(frozen=True)
class CompactionPolicy:
    max_messages: int = 50  # OPENCODE_COMPACT_MESSAGES
    ratio: float = 0.8  # OPENCODE_COMPACT_RATIO of the context window
    fallback_window: int = 128_000  # when LiteLLM does not know the model
    summary_max_tokens: int = 4_096

    @property
    def keep_messages(self) -> int:
        """Recent messages kept verbatim after an automatic compaction."""
        return max(2, self.max_messages // 5)

    def keep_tokens(self, window: int) -> int:
        return window // 4

    def prune_budget(self, window: int) -> int:
        """Tool output tokens a request may carry before older outputs are pruned."""
        return min(40_000, int(window * self.ratio * 0.4))

    def transcript_chars(self, window: int) -> int:
        return min(400_000, window * 2)  # about half the window, at ~4 characters a token


@dataclass(frozen=True)
class Context:
    """What the model sees of a session before a new turn: the summary in force, then the
    messages stored after what it folded."""

    summary: str | None
    records: list[MessageRecord]
    state: CompactionRecord | None
    summary_record: MessageRecord | None = None  # the summary message a compaction just stored

    def messages(self) -> list[ChatMessage]:
        head = [summary_message(self.summary)] if self.summary else []
        return head + build_history(self.records)

    def last_prompt_tokens(self) -> int | None:
        """The prompt size of the latest model call, as the provider counted it."""
        for record in reversed(self.records):
            for part in reversed(record.parts):
                if part.get("type") == "step-finish":
                    return int(part.get("usage", {}).get("input_tokens") or 0)
        return None


class NothingToCompact(Conflict):
    pass


class Compactor:
    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        client: ModelClient,
        catalog: ProviderCatalog,
        quota: QuotaService,
        policy: CompactionPolicy,
    ) -> None:
        self._store = store
        self._bus = bus
        self._client = client
        self._catalog = catalog
        self._quota = quota
        self.policy = policy

    async def status(self, session_id: str) -> CompactionStatusOut:
        await require_session(self._store, session_id)
        return compaction_status_out(session_id, await self._store.get_compaction(session_id))

    async def load(self, session_id: str) -> Context:
        state = await self._store.get_compaction(session_id)
        summary, after = None, 0
        if state is not None and state.summary_message_id:
            message = await self._store.get_message(state.summary_message_id)
            if message is not None:
                summary = next(p["summary"] for p in message.parts if p["type"] == "compaction")
                after = state.folded_through_seq
        records, _ = await self._store.list_messages(
            session_id, limit=None, offset=after, order="asc"
        )
        return Context(summary, [r for r in records if not is_summary(r)], state)

    def window(self, model: ResolvedModel) -> int:
        info = self._catalog.find_model(model.provider_id, model.model_id)
        return (info.context_window if info else None) or self.policy.fallback_window

    async def compact(
        self,
        session_id: str,
        model: ResolvedModel,
        *,
        user_id: str,
        trigger: CompactionTrigger,
        keep_messages: int,
        before_seq: int | None = None,
        emit: Emit | None = None,
        client: ModelClient | None = None,
        turn_id: str | None = None,
    ) -> Context:
        """Fold what is older than the ``keep_messages`` most recent messages (of those before
        ``before_seq``) into a summary and return the new context.

        Raises ``NothingToCompact`` (409) when there is nothing to fold, and ``UpstreamError``
        (502) when the summary could not be made, ``QuotaExceeded`` (429) when ``user_id``, who
        pays for the summary, has no tokens left today; the failure is recorded and
        announced."""
        context = await self.load(session_id)
        window = self.window(model)
        candidates = [r for r in context.records if before_seq is None or r.seq < before_seq]
        fold = plan_fold(
            candidates,
            keep_messages=keep_messages,
            keep_tokens=self.policy.keep_tokens(window),
        )
        if not fold.folded:
            raise NothingToCompact(
                f"Nothing to compact: session {session_id} has no messages older than the "
                f"{keep_messages} most recent ones that are not already summarised."
            )
        await self._quota.check(user_id)  # over quota: 429, and no attempt is recorded
        state = CompactionRecord(
            session_id=session_id,
            status="running",
            trigger=trigger,
            started_at=utc_now(),
            tokens_before=estimate_tokens(context.messages()),
            summary_message_id=context.state.summary_message_id if context.state else None,
            folded_through_seq=context.state.folded_through_seq if context.state else 0,
            compactions=context.state.compactions if context.state else 0,
        )
        announce = _Announcer(self._bus, session_id, trigger, emit)
        await self._store.save_compaction(state)
        announce("started")
        try:
            todos = await self._store.get_todos(session_id)
            metered = self._quota.metered(client or self._client, user_id, model.ref)
            output = await self._summarise(
                metered, model, context.summary, fold.folded, window, todos
            )
            after = Context(output.text.strip(), fold.kept, None)
            done = replace(
                state,
                status="completed",
                finished_at=utc_now(),
                messages_folded=len(fold.folded),
                tokens_after=estimate_tokens(after.messages()),
                folded_through_seq=fold.folded[-1].seq,
                compactions=state.compactions + 1,
            )
            summary = await self._store_summary(done, model, output, parent_id=turn_id)
            done = replace(done, summary_message_id=summary.id)
            await self._store.save_compaction(done)
        except asyncio.CancelledError:
            await asyncio.shield(self._failed(state, "Aborted before the summary was finished."))
            announce("failed", error="aborted")
            raise
        except (ProviderError, OpencodeError) as exc:
            await self._failed(state, exc.message)
            announce("failed", error=exc.message)
            if isinstance(exc, QuotaExceeded):
                raise  # a 429 stays a 429
            raise UpstreamError(f"Compaction failed: {exc.message}") from None
        except Exception:
            reference = new_id("err")
            log.exception("compaction of session %s failed (%s)", session_id, reference)
            error = f"internal error (id {reference})"
            await self._failed(state, error)
            announce("failed", error=error)
            raise OpencodeError(f"Compaction failed: {error}") from None
        announce("completed", state=done, cost=output.cost)
        log.info(
            "compacted session %s (%s): %d messages folded, ~%d -> ~%d tokens, $%.6f",
            session_id,
            trigger,
            done.messages_folded,
            done.tokens_before,
            done.tokens_after,
            output.cost,
        )
        self._bus.publish("message.created", session_id=session_id, id=summary.id, role="assistant")
        self._bus.publish("session.updated", id=session_id)
        return replace(after, state=done, summary_record=summary)

    async def _summarise(
        self,
        client: ModelClient,
        model: ResolvedModel,
        previous: str | None,
        folded: Sequence[MessageRecord],
        window: int,
        todos: list[dict[str, Any]],
    ) -> StepOutput:
        request = ModelRequest(
            model=model.litellm_model,
            messages=(
                ChatMessage(
                    "user",
                    summary_request(
                        previous,
                        folded,
                        todos=todos,
                        max_chars=self.policy.transcript_chars(window),
                    ),
                ),
            ),
            system=SUMMARY_PROMPT,
            api_key=model.api_key,
            api_base=model.api_base,
            max_tokens=self.policy.summary_max_tokens,
            # ~4 characters a token, with room for providers that ignore max_tokens
            max_output_chars=self.policy.summary_max_tokens * 16,
        )
        output = await complete(client, request)
        if output is None or not output.text.strip():
            raise OpencodeError("The model returned an empty summary.", status_code=502)
        return output

    async def _store_summary(
        self,
        state: CompactionRecord,
        model: ResolvedModel,
        output: StepOutput,
        *,
        parent_id: str | None,
    ) -> MessageRecord:
        """The summary message goes at the end of the session, where the compaction happened;
        its tokens and cost count like any step's. One made during a turn has the turn's user
        message as its parent, so its Codex items carry that turn's id, live and exported."""
        summary = output.text.strip()
        record = await self._store.add_message(
            new_message(
                state.session_id,
                "assistant",
                "completed",
                parts=[_summary_part(state, summary)],
                content=summary,
                parent_id=parent_id,
                model=model.ref,
                usage=asdict(output.usage),
                cost=output.cost,
            )
        )
        await self._store.record_step_usage(
            state.session_id, model=model.ref, usage=asdict(output.usage), cost=output.cost
        )
        return record

    async def _failed(self, state: CompactionRecord, error: str) -> None:
        log.warning("compaction of session %s failed: %s", state.session_id, error)
        try:
            failed = replace(state, status="failed", finished_at=utc_now(), error=error)
            await self._store.save_compaction(failed)
        except Exception:
            log.exception("could not record the failed compaction of %s", state.session_id)


class _Announcer:
    """Compaction progress on ``/event`` and, for a run, in its message stream."""

    def __init__(
        self, bus: EventBus, session_id: str, trigger: CompactionTrigger, emit: Emit | None
    ) -> None:
        self._bus, self._session_id, self._trigger, self._emit = bus, session_id, trigger, emit

    def __call__(
        self,
        status: str,
        *,
        state: CompactionRecord | None = None,
        cost: float = 0.0,
        error: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {"status": status, "trigger": self._trigger, "error": error}
        if state is not None:
            fields |= {
                "messages_folded": state.messages_folded,
                "tokens_before": state.tokens_before,
                "tokens_after": state.tokens_after,
                "summary_message_id": state.summary_message_id,
                "cost": cost,
            }
        if self._emit is not None:
            self._emit(CompactionEvent(**fields))
        self._bus.publish("session.compaction", session_id=self._session_id, **fields)


def _summary_part(state: CompactionRecord, summary: str) -> dict[str, Any]:
    return {
        "type": "compaction",
        "summary": summary,
        "trigger": state.trigger,
        "messages_folded": state.messages_folded,
        "folded_through_seq": state.folded_through_seq,
        "tokens_before": state.tokens_before,
        "tokens_after": state.tokens_after,
    }
