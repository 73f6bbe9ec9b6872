"""Runs: one server-owned task per turn, outliving the HTTP connection that started it.

``start`` validates, stores the user message and an empty ``running`` assistant message, and
spawns the task; the caller streams by following the run's log. ``abort`` cancels the task and
waits for it to store the partial reply. At startup, ``recover`` marks replies that a crash
interrupted as ``error`` so their sessions take new messages.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from opencode.agent.loop import Turn
from opencode.core.errors import BadRequest, Conflict, NotFound, OpencodeError
from opencode.events.bus import EventBus
from opencode.llm.types import ChatMessage, ModelClient, ModelRequest, ProviderError
from opencode.schemas.events import MessageStart
from opencode.schemas.messages import MessageCreate
from opencode.schemas.sessions import AbortOut, CompactionStatusOut
from opencode.services.compaction import INTERRUPTED as COMPACTION_INTERRUPTED
from opencode.services.compaction import Compactor, Context
from opencode.services.providers import ProviderCatalog, ResolvedModel
from opencode.services.questions import QuestionBroker
from opencode.services.records import new_message, require_session
from opencode.services.run_context import RunContext
from opencode.services.run_driver import Run, RunDriver, RunTools, drive
from opencode.services.todos import TodoService
from opencode.services.views import compaction_status_out
from opencode.storage.base import Store
from opencode.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are OpenCode, a helpful assistant. Answer clearly and concisely. Use the tools you are "
    "given when they help: keep a todo list for multi-step work, and ask the user a question when "
    "you genuinely need their input to continue."
)
INTERRUPTED = "Interrupted: the server stopped while this reply was being generated."
ABORT_WAIT_SECONDS = 5.0

# The session whose run is executing in the current task (read by the retry notifier, which
# sits inside the model client and so knows nothing about sessions).
_run_session: ContextVar[str | None] = ContextVar("opencode_run_session", default=None)


def retry_notifier(bus: EventBus) -> Callable[[int, ProviderError, float], None]:
    """``on_retry`` for the model client: tell ``/event`` subscribers a step is being retried."""

    def notify(attempt: int, error: ProviderError, delay: float) -> None:
        session_id = _run_session.get()
        if session_id is not None:
            bus.publish(
                "session.status",
                session_id=session_id,
                status="retry",
                attempt=attempt,
                delay=round(delay, 3),
                message=error.message,
            )

    return notify


class RunManager:
    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        catalog: ProviderCatalog,
        registry: ToolRegistry,
        client: ModelClient,
        todos: TodoService,
        questions: QuestionBroker,
        compactor: Compactor,
        max_output_tokens: int | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._catalog = catalog
        self._registry = registry
        self._client = client
        self._todos = todos
        self._questions = questions
        self._compactor = compactor
        self._max_output_tokens = max_output_tokens
        self._runs: dict[str, Run | None] = {}  # None: reserved while a start is validating
        self._compactions: dict[str, asyncio.Task[Context]] = {}  # on-demand compactions

    def is_busy(self, session_id: str) -> bool:
        return session_id in self._runs or session_id in self._compactions

    async def follow(self, session_id: str) -> Run:
        """The run of the turn going on in this session: 404 for an unknown session, or
        when nothing is running."""
        await require_session(self._store, session_id)
        run = self._runs.get(session_id)
        if run is None:
            raise NotFound(f"Nothing is running in session {session_id}.")
        return run

    async def start(self, session_id: str, body: MessageCreate) -> Run:
        self._reserve(session_id)
        try:
            run, turn = await self._prepare(session_id, body)
        except BaseException:
            self._runs.pop(session_id, None)
            raise
        self._runs[session_id] = run
        driver = RunDriver(run, self._store, self._bus, max_steps=turn.max_steps)
        tools = RunTools(run, self._todos, self._questions)
        run.task = asyncio.create_task(
            self._own(run, drive(driver, self._client, self._registry, turn, tools)),
            name=f"run:{run.message_id}",
        )
        return run

    async def compact(self, session_id: str) -> CompactionStatusOut:
        """Compact now, keeping only the latest exchange verbatim. The compaction is owned
        here, not by the request: a client that goes away does not cut it short."""
        session = await require_session(self._store, session_id)
        model = self._catalog.resolve(session_model=session.model)
        self._check_free(session_id)
        task = asyncio.create_task(self._compactor_task(session_id, model))
        task.add_done_callback(_retrieve)  # its error is the request's, if one still waits
        self._compactions[session_id] = task
        await asyncio.wait([task])  # unlike awaiting it, a cancelled request leaves it running
        if task.cancelled():
            raise Conflict(f"The compaction of session {session_id} was aborted.")
        compacted = task.result()  # NothingToCompact or UpstreamError become the response
        return compaction_status_out(session_id, compacted.state)

    async def abort(self, session_id: str) -> AbortOut:
        await require_session(self._store, session_id)
        compaction = self._compactions.get(session_id)
        if compaction is not None:
            compaction.cancel()
            await asyncio.wait([compaction], timeout=ABORT_WAIT_SECONDS)
            return AbortOut(session_id=session_id, aborted=True)
        run = self._runs.get(session_id)
        if run is None or run.task is None:
            return AbortOut(session_id=session_id, aborted=False)
        await _cancel([run])
        return AbortOut(session_id=session_id, aborted=True, message_id=run.message_id)

    async def recover(self) -> None:
        """After a crash: nothing is running, so ``running`` messages and pending questions
        belong to a dead process."""
        failed = await self._store.fail_running_messages(INTERRUPTED)
        expired = await self._store.expire_pending_questions()
        compactions = await self._store.fail_running_compactions(COMPACTION_INTERRUPTED)
        if failed or expired or compactions:
            log.warning(
                "recovered %d interrupted message(s), %d question(s), %d compaction(s)",
                len(failed),
                expired,
                compactions,
            )

    async def shutdown(self) -> None:
        """Abort every run (keeping partial replies) and wait for them to be stored."""
        for task in self._compactions.values():
            task.cancel()
        if self._compactions:
            await asyncio.wait(list(self._compactions.values()), timeout=ABORT_WAIT_SECONDS)
        await _cancel([run for run in self._runs.values() if run is not None and run.task])

    async def _compactor_task(self, session_id: str, model: ResolvedModel) -> Context:
        self._status(session_id, "busy")
        try:
            return await self._compactor.compact(
                session_id, model, trigger="manual", keep_messages=2
            )
        finally:
            self._compactions.pop(session_id, None)
            self._status(session_id, "idle")

    def _status(self, session_id: str, status: str) -> None:
        self._bus.publish("session.status", session_id=session_id, status=status)

    def _reserve(self, session_id: str) -> None:
        self._check_free(session_id)
        self._runs[session_id] = None

    def _check_free(self, session_id: str) -> None:
        if session_id in self._compactions:
            raise Conflict(
                "This session is being compacted; wait for it to finish (GET "
                f"/session/{session_id}/compaction-status) or POST /session/{session_id}/abort."
            )
        if session_id in self._runs:
            run = self._runs[session_id]
            raise Conflict(
                "A reply is already being generated in this session; wait for it to finish "
                f"or POST /session/{session_id}/abort.",
                message_id=run.message_id if run else None,
            )

    async def _prepare(self, session_id: str, body: MessageCreate) -> tuple[Run, Turn]:
        session = await require_session(self._store, session_id)
        model = self._catalog.resolve(
            provider_id=body.provider_id, model_id=body.model_id, session_model=session.model
        )
        try:
            tools = self._registry.select(body.tools)
        except ValueError as exc:
            raise OpencodeError(str(exc), status_code=422) from None
        extra = self._reasoning_options(model, body.reasoning_effort)
        context = await self._compactor.load(session_id)
        user = await self._store.add_message(
            new_message(
                session_id,
                "user",
                "completed",
                parts=[{"type": "text", "text": body.content}],
                content=body.content,
            )
        )
        assistant = await self._store.add_message(
            new_message(session_id, "assistant", "running", parent_id=user.id, model=model.ref)
        )
        if (body.provider_id or body.model_id) and session.model != model.ref:
            await self._store.update_session(session_id, model=model.ref)  # the choice sticks
        run = Run(session_id=session_id, message_id=assistant.id, model=model)
        run.emit(
            MessageStart(
                message_id=assistant.id, parent_id=user.id, session_id=session_id, model=model.ref
            )
        )
        for record in (user, assistant):
            self._bus.publish(
                "message.created", session_id=session_id, id=record.id, role=record.role
            )
        self._status(session_id, "busy")
        request = ModelRequest(
            model=model.litellm_model,
            messages=(*context.messages(), ChatMessage("user", body.content)),
            system=body.system or DEFAULT_SYSTEM_PROMPT,
            tools=self._registry.specs(tools),
            api_key=model.api_key,
            api_base=model.api_base,
            max_tokens=self._max_output_tokens,
            extra=extra,
        )
        keeper = RunContext(
            self._compactor, model=model, context=context, user_message=user, emit=run.emit
        )
        return run, Turn(request=request, tools=tools, max_steps=body.max_steps, context=keeper)

    def _reasoning_options(self, model: ResolvedModel, effort: str | None) -> dict[str, str]:
        if effort is None:
            return {}
        info = self._catalog.find_model(model.provider_id, model.model_id)
        if info is not None and not info.supports_reasoning:
            raise BadRequest(
                f"Model {model.ref} does not support reasoning; drop reasoning_effort or pick a "
                f"model with supports_reasoning in GET /provider/{model.provider_id}/model."
            )
        return {"reasoning_effort": effort}

    async def _own(self, run: Run, body: Coroutine[Any, Any, None]) -> None:
        run.started.set()
        _run_session.set(run.session_id)
        try:
            await body
        finally:
            run.close()
            self._runs.pop(run.session_id, None)
            self._status(run.session_id, "idle")


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _cancel(runs: list[Run]) -> None:
    """Cancel runs and wait until they have stored their partial replies.

    A task cancelled before its first step never enters its body (so could not finish the
    message); waiting for ``started`` first makes the abort land inside ``drive``."""
    for run in runs:
        await asyncio.wait_for(run.started.wait(), ABORT_WAIT_SECONDS)
        assert run.task is not None
        run.task.cancel()
    tasks = [run.task for run in runs if run.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=ABORT_WAIT_SECONDS)
