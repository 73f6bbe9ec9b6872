"""Runs: one server-owned task per turn, outliving the HTTP connection that started it.

``start`` reserves the session (and the reply's id), has the ``TurnBuilder`` validate and store
the turn, and spawns the task; the caller streams by following the run's log. ``abort`` asks the
task to stop once and waits for it to store the partial reply, however many aborts arrive.
``drain`` is the shutdown: no new work, running turns get a grace period, then they are stopped
with ``stop_reason: "shutdown"``. At startup, ``recover`` marks replies that a crash interrupted
as ``error`` so their sessions take new messages.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opencode.core.errors import Conflict, NotFound
from opencode.core.ids import new_id
from opencode.core.users import LOCAL_USER_ID
from opencode.events.bus import EventBus
from opencode.llm.types import ModelClient, ProviderError
from opencode.schemas.messages import MessageCreate
from opencode.schemas.sessions import AbortOut, CompactionStatusOut
from opencode.services.compaction import INTERRUPTED as COMPACTION_INTERRUPTED
from opencode.services.compaction import Compactor, Context
from opencode.services.draft_writer import DraftWriter
from opencode.services.gate import Gate
from opencode.services.providers import ProviderCatalog, ResolvedModel
from opencode.services.questions import QuestionBroker
from opencode.services.records import require_session
from opencode.services.retry import RetryPolicy
from opencode.services.run import Run, StopReason
from opencode.services.run_driver import RunDriver
from opencode.services.run_task import drive
from opencode.services.run_tools import RunTools
from opencode.services.todos import TodoService
from opencode.services.turns import TurnBuilder
from opencode.services.views import compaction_status_out
from opencode.storage.base import Store
from opencode.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

INTERRUPTED = "Interrupted: the server stopped while this reply was being generated."
ABORT_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class _Reserved:
    """A session claimed by a turn that is still being validated and stored."""

    message_id: str


class _Importing:
    """A session claimed by a history import (``claim``)."""


class RunManager:
    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        catalog: ProviderCatalog,
        registry: ToolRegistry,
        models: ModelClient,
        retry: RetryPolicy,
        builder: TurnBuilder,
        todos: TodoService,
        questions: QuestionBroker,
        compactor: Compactor,
        gate: Gate,
        writer: DraftWriter,
        turn_timeout: float | None = None,
    ) -> None:
        self._store = store
        self._writer = writer
        self._bus = bus
        self._catalog = catalog
        self._registry = registry
        self._models = models
        self._retry = retry
        self._builder = builder
        self._todos = todos
        self._questions = questions
        self._compactor = compactor
        self._gate = gate
        self._turn_timeout = turn_timeout
        self._runs: dict[str, Run | _Reserved | _Importing] = {}
        self._compactions: dict[str, asyncio.Task[Context]] = {}  # on-demand compactions

    def is_busy(self, session_id: str) -> bool:
        return session_id in self._runs or session_id in self._compactions

    @property
    def running(self) -> list[Run]:
        return [run for run in self._runs.values() if isinstance(run, Run)]

    async def follow(self, session_id: str) -> Run:
        """The run of the turn going on in this session: 404 for an unknown session, or
        when nothing is running."""
        await require_session(self._store, session_id)
        run = self._runs.get(session_id)
        if not isinstance(run, Run):
            raise NotFound(f"Nothing is running in session {session_id}.")
        return run

    async def start(self, session_id: str, body: MessageCreate) -> Run:
        self._gate.check()
        self._check_free(session_id)
        # Reserved before anything is awaited, so a concurrent 409 can name the reply.
        reserved = self._runs[session_id] = _Reserved(new_id("msg"))
        driver: RunDriver | None = None

        def on_retry(attempt: int, error: ProviderError, delay: float) -> None:
            if driver is not None:  # assigned below, before the run's task starts
                driver.retrying(attempt, error, delay)

        client = self._retry.client(self._models, on_retry)
        try:
            run, turn = await self._builder.build(
                session_id, body, message_id=reserved.message_id, client=client
            )
        except BaseException:
            self._runs.pop(session_id, None)
            raise
        self._runs[session_id] = run
        saver = self._writer.saver(session_id, run.message_id, run.draft)
        driver = RunDriver(run, saver, self._bus, max_steps=turn.max_steps)
        tools = RunTools(run, self._todos, self._questions)
        self._status(session_id, "busy")
        body_coro = drive(
            driver, client, self._registry, turn, tools, turn_timeout=self._turn_timeout
        )
        run.task = asyncio.create_task(self._own(run, body_coro), name=f"run:{run.message_id}")
        return run

    @contextmanager
    def claim(self, session_id: str) -> Iterator[None]:
        """Hold the session for a change that is not a turn (a history import): 409 while a
        turn or a compaction runs in it; until the block ends, turns and compactions get 409."""
        self._check_free(session_id)
        claimed = self._runs[session_id] = _Importing()
        try:
            yield
        finally:
            if self._runs.get(session_id) is claimed:
                del self._runs[session_id]

    async def compact(self, session_id: str) -> CompactionStatusOut:
        """Compact now, keeping only the latest exchange verbatim. The compaction is owned
        here, not by the request: a client that goes away does not cut it short."""
        self._gate.check()
        session = await require_session(self._store, session_id)
        model = self._catalog.resolve(session_model=session.model)
        self._check_free(session_id)
        owner = session.user_id or LOCAL_USER_ID
        task = asyncio.create_task(self._compactor_task(session_id, model, owner))
        task.add_done_callback(_retrieve)  # its error is the request's, if one still waits
        self._compactions[session_id] = task
        await asyncio.wait([task])  # unlike awaiting it, a cancelled request leaves it running
        if task.cancelled():
            raise Conflict(f"The compaction of session {session_id} was aborted.")
        compacted = task.result()  # NothingToCompact or UpstreamError become the response
        return compaction_status_out(session_id, compacted.state)

    async def abort(self, session_id: str) -> AbortOut:
        """Stop what runs in the session, keeping the partial reply; idempotent: every abort
        of one turn waits for the same end and gets the same answer."""
        await require_session(self._store, session_id)
        compaction = self._compactions.get(session_id)
        if compaction is not None:
            compaction.cancel()
            await asyncio.wait([compaction], timeout=ABORT_WAIT_SECONDS)
            return AbortOut(session_id=session_id, aborted=True)
        run = self._runs.get(session_id)
        if not isinstance(run, Run) or run.task is None:
            return AbortOut(session_id=session_id, aborted=False)
        await _stop([run], "aborted")
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

    async def drain(self, grace: float, *, hurry: asyncio.Event | None = None) -> None:
        """Shut down: refuse new turns (503), give running turns and compactions ``grace``
        seconds to finish (less if ``hurry`` is set meanwhile), then stop them, keeping their
        partial replies (``done`` with ``stop_reason: "shutdown"``), and wait until they are
        stored."""
        self._gate.close()
        busy = self._busy_tasks()
        if busy and grace > 0 and not (hurry and hurry.is_set()):
            log.info("waiting up to %g s for %d running turn(s) to finish", grace, len(busy))
            await _wait_all(busy, within=grace, unless=hurry)
        started = time.monotonic()
        for task in self._compactions.values():
            task.cancel()
        if self._compactions:
            await asyncio.wait(list(self._compactions.values()), timeout=ABORT_WAIT_SECONDS)
        stopping = [run for run in self.running if run.task is not None and not run.task.done()]
        if stopping:
            log.warning("stopping %d running turn(s) for the shutdown", len(stopping))
            await _stop(stopping, "shutdown")
            log.info("stopped in %.2f s", time.monotonic() - started)

    def _busy_tasks(self) -> list[asyncio.Task[Any]]:
        runs = [run.task for run in self.running if run.task is not None]
        return [task for task in (*runs, *self._compactions.values()) if not task.done()]

    async def _compactor_task(self, session_id: str, model: ResolvedModel, user_id: str) -> Context:
        self._status(session_id, "busy")
        try:
            return await self._compactor.compact(
                session_id, model, user_id=user_id, trigger="manual", keep_messages=2
            )
        finally:
            self._compactions.pop(session_id, None)
            self._status(session_id, "idle")

    def _status(self, session_id: str, status: str) -> None:
        self._bus.publish("session.status", session_id=session_id, status=status)

    def _check_free(self, session_id: str) -> None:
        if session_id in self._compactions:
            raise Conflict(
                "This session is being compacted; wait for it to finish (GET "
                f"/session/{session_id}/compaction-status) or POST /session/{session_id}/abort."
            )
        held = self._runs.get(session_id)
        if isinstance(held, _Importing):
            raise Conflict("A history is being imported into this session; retry in a moment.")
        if held is not None:
            raise Conflict(
                "A reply is already being generated in this session; wait for it to finish "
                f"or POST /session/{session_id}/abort.",
                message_id=held.message_id,
            )

    async def _own(self, run: Run, body: Coroutine[Any, Any, None]) -> None:
        run.started.set()
        try:
            await body
        finally:
            run.close()
            self._runs.pop(run.session_id, None)
            self._status(run.session_id, "idle")


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _wait_all(
    tasks: list[asyncio.Task[Any]], *, within: float, unless: asyncio.Event | None
) -> None:
    """Wait until every task is done, ``within`` seconds pass or ``unless`` is set."""
    waiters = [asyncio.ensure_future(asyncio.wait(tasks))]
    if unless is not None:
        waiters.append(asyncio.ensure_future(unless.wait()))
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _stop(runs: list[Run], reason: StopReason) -> None:
    """Stop runs (each is cancelled once, whoever asks) and wait until they have stored their
    partial replies.

    A task cancelled before its first step never enters its body (so could not finish the
    message); waiting for ``started`` first makes the stop land inside ``drive``."""
    for run in runs:
        await asyncio.wait_for(run.started.wait(), ABORT_WAIT_SECONDS)
        run.request_stop(reason)
    tasks = [run.task for run in runs if run.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=ABORT_WAIT_SECONDS)
