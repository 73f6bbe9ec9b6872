"""The owner's side of a lease: the heartbeat, and what it learns (abort, answers, loss).

One ``Holding`` per run, over any ``Coordinator``. The heartbeat renews every
``renew_every`` seconds and also right after a wake-up (``Coordinator.watch``), so an abort or
an answer arrives within a round trip when the wake-up gets through and within one beat when
it does not (``run-coordination.md`` §1: durable record first, wake-up second).

Self-fence (§1 heartbeat, §2 partition): when no renew has succeeded for ``fence_after``
seconds, counted on the monotonic clock from when the last successful renew was *sent*, the
lease counts as lost even if Redis still has it: the owner stops before another process can
legitimately claim the session.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType

from opencode.coordination.base import Answers, Beat, Coordinator, Lease

log = logging.getLogger(__name__)


class Holding:
    def __init__(
        self,
        coordinator: Coordinator,
        lease: Lease,
        *,
        renew_every: float,
        fence_after: float | None = None,
        on_abort: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.lease = lease
        self.aborted = asyncio.Event()
        self.lost = asyncio.Event()
        self._coordinator = coordinator
        self._renew_every = renew_every
        self._fence_after = fence_after if fence_after is not None else lease.ttl_ms / 1000 * 0.75
        self._on_abort = on_abort
        self._on_lost = on_lost
        self._answers: dict[str, Answers] = {}
        self._waiting: dict[str, asyncio.Future[Answers]] = {}
        self._kick = asyncio.Event()
        self._last_ok = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._unwatch: Callable[[], None] | None = None

    async def __aenter__(self) -> "Holding":
        self._unwatch = self._coordinator.watch(self.lease, self._kick.set)
        self._task = asyncio.create_task(self._beat(), name=f"lease:{self.lease.session_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the heartbeat and release the lease (if it is still ours)."""
        if self._unwatch is not None:
            self._unwatch()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for future in self._waiting.values():
            future.cancel()
        if not self.lost.is_set():
            try:
                await self._coordinator.release(self.lease)
            except Exception:  # the lease lapses on its own; nothing else to undo
                log.exception("could not release the lease of session %s", self.lease.session_id)

    async def answer(self, question_id: str) -> Answers:
        """Wait for the answers to ``question_id`` (delivered by any process)."""
        if question_id in self._answers:
            return self._answers[question_id]
        future = self._waiting.setdefault(question_id, asyncio.get_running_loop().create_future())
        try:
            return await future
        finally:
            self._waiting.pop(question_id, None)

    async def _beat(self) -> None:
        while not self.lost.is_set():
            await self._renew()
            # ``asyncio.timeout``, not ``wait_for``: on 3.11 ``wait_for`` swallows a cancel
            # that lands as the kick arrives, and the heartbeat would outlive its ``Holding``.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._renew_every):
                    await self._kick.wait()
            self._kick.clear()

    async def _renew(self) -> None:
        sent = time.monotonic()
        try:
            beat = await self._coordinator.renew(self.lease)
        except Exception as error:  # Redis unreachable: keep trying until the self-fence
            log.warning("renewing the lease of session %s failed: %s", self.lease.session_id, error)
            if time.monotonic() - self._last_ok > self._fence_after:
                self._lose("no renew succeeded in time (self-fence)")
            return
        if beat is None:
            self._lose("another run holds the session")
            return
        self._last_ok = sent
        self._learn(beat)

    def _learn(self, beat: Beat) -> None:
        if beat.abort_requested and not self.aborted.is_set():
            self.aborted.set()
            if self._on_abort is not None:
                self._on_abort()
        for question_id, answers in beat.answers.items():
            # Every beat reports every answer of the run; the first report is the one kept.
            answers = self._answers.setdefault(question_id, answers)
            future = self._waiting.get(question_id)
            if future is not None and not future.done():
                future.set_result(answers)

    def _lose(self, why: str) -> None:
        log.warning("lost the lease of session %s: %s", self.lease.session_id, why)
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost()
