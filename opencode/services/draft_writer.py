"""Drafts written off the chunk path: one writer task per process, one transaction per batch.

A reply being generated is written to the store every second and at step boundaries, so a
reader or a crash loses at most a second of it. Awaiting those writes in the run that produced
the text put the database in the chunk path: at 200 streams on one SQLite connection each stream
stalled up to a second per second (bench/README.md). Instead a run asks for a write
(``DraftSaver.soon``) and goes on; the ``DraftWriter`` task takes every reply that asked since its
last batch and stores them all in one ``Store.write_drafts`` call (one transaction, one round
trip). A reply that asks again while its write is in flight is written in the next batch, with
everything it gained meanwhile, so the queue holds each live reply at most once: it is bounded by
the number of runs, and a slow store makes batches larger, never the queue longer. Runs feel the
back-pressure at step boundaries: when the writer is behind, they wait for their own write there.

The last write of a reply (``DraftSaver.save``, with its final status) is awaited: ``done`` is
sent only once the reply is stored. It rides the next batch like any other.
"""

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from opencode.services.draft import Draft, Pending
from opencode.storage.base import DraftWrite, MessageStatus, StepUsage, Store

log = logging.getLogger(__name__)

MAX_BATCH = 256  # replies per transaction
RETRY_DELAY = 0.5  # seconds before a failed background write is tried again
BEHIND = 2.0  # seconds a reply may wait for its write before its run waits at a step boundary


@dataclass
class _Taken:
    """One reply's write in a batch, and who waits for it."""

    saver: "DraftSaver"
    write: DraftWrite
    pending: Pending
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)


class DraftSaver:
    """One reply's side of the writer: what its next write must carry besides the draft."""

    def __init__(self, writer: "DraftWriter", session_id: str, message_id: str, draft: Draft):
        self._writer = writer
        self.session_id = session_id
        self.message_id = message_id
        self._draft = draft
        self._steps: list[StepUsage] = []  # usage to add to the session, one step per write
        self._status: MessageStatus | None = None
        self._error: str | None = None
        self._waiters: list[asyncio.Future[bool]] = []
        self._asked_at: float | None = None  # when a write was asked for and not yet stored

    def soon(self, step: StepUsage | None = None) -> None:
        """Write what changed, in the writer's next batch; never waits."""
        if step is not None:
            self._steps.append(step)
        if self._asked_at is None:
            self._asked_at = time.monotonic()
        self._writer.want(self)

    async def step_boundary(self, step: StepUsage | None = None) -> None:
        """``soon``, but wait for the write if the writer is behind (back-pressure)."""
        if self._asked_at is not None and time.monotonic() - self._asked_at > BEHIND:
            await self.save()
            self.soon(step)
        else:
            self.soon(step)

    async def save(self, *, status: MessageStatus | None = None, error: str | None = None) -> bool:
        """Write everything up to now and wait until it is stored: True, or False if the message
        is gone; raises what the store raised. Setting a status makes this the final write."""
        if status is not None:
            self._status, self._error = status, error
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.soon()
        return await waiter

    # ---- the writer's side ----

    def take(self) -> _Taken:
        """The write that brings the store up to date with the draft as it is now."""
        draft = self._draft
        pending = draft.pending()
        step = self._steps.pop(0) if self._steps else None
        write = DraftWrite(
            self.session_id,
            self.message_id,
            pending.patch,
            usage=draft.usage_dict(),
            cost=draft.cost,
            status=self._status,
            error=self._error,
            step=step,
        )
        waiters, self._waiters = self._waiters, []
        return _Taken(self, write, pending, waiters)

    def abandon(self, error: Exception) -> None:
        """Its write could not even be prepared: whoever waits for it gets ``error``."""
        waiters, self._waiters = self._waiters, []
        self._asked_at = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def landed(self, taken: _Taken, stored: bool) -> None:
        if stored:
            self._draft.written(taken.pending)
        else:  # the message is gone (its session was deleted): nothing more to add
            self._steps.clear()
        if not self._steps and not self._waiters:
            self._asked_at = None
        if self._steps:  # several steps finished while the store was slow
            self._writer.want(self)
        for waiter in taken.waiters:
            if not waiter.done():
                waiter.set_result(stored)

    def failed(self, taken: _Taken, error: BaseException, *, retry: bool) -> None:
        """Nothing of ``taken`` was stored: it stays pending (the draft keeps it, the step is
        put back); a background write is tried again later, an awaited one reports ``error``."""
        if taken.write.step is not None:
            self._steps.insert(0, taken.write.step)
        for waiter in taken.waiters:
            if not waiter.done():
                waiter.set_exception(error)
        if retry and not taken.waiters:
            self._writer.retry_later(self)


class DraftWriter:
    """The process's writer of drafts. ``start()`` in the lifespan, ``close()`` after the runs
    have stopped: it writes what is still pending, then ends."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._wanted: dict[DraftSaver, None] = {}  # insertion-ordered set: oldest first
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._retries: set[asyncio.TimerHandle] = set()

    def saver(self, session_id: str, message_id: str, draft: Draft) -> DraftSaver:
        return DraftSaver(self, session_id, message_id, draft)

    @property
    def backlog(self) -> int:
        """Replies waiting for the next batch."""
        return len(self._wanted)

    def start(self) -> None:
        if self._task is None or self._task.done():  # done: it failed; a new one takes over
            self._task = asyncio.get_running_loop().create_task(self._run(), name="draft-writer")

    async def close(self) -> None:
        """Write what is pending (failures are logged, not retried), then stop."""
        self._closing = True
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        self._wake.set()
        if self._task is not None:
            await asyncio.wait([self._task])
            self._task = None

    def want(self, saver: DraftSaver) -> None:
        self._wanted[saver] = None
        if self._task is None or self._task.done():  # not started, closed or failed
            self.start()
        self._wake.set()

    def retry_later(self, saver: DraftSaver) -> None:
        if self._closing:
            return
        handle = asyncio.get_running_loop().call_later(RETRY_DELAY, self._retry, saver)
        self._retries.add(handle)

    def _retry(self, saver: DraftSaver) -> None:
        self._retries = {handle for handle in self._retries if not handle.cancelled()}
        self.want(saver)

    async def _run(self) -> None:
        while True:
            if not self._wanted:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(itertools.islice(self._wanted, self._max_batch))
            for saver in batch:
                del self._wanted[saver]
            await self._write([taken for saver in batch if (taken := _take(saver)) is not None])

    async def _write(self, batch: Sequence[_Taken]) -> None:
        try:
            stored = await self._store.write_drafts([taken.write for taken in batch])
        except Exception as exc:
            if len(batch) == 1:
                self._failed(batch[0], exc)
                return
            # One bad write must not fail the others: each on its own.
            for taken in batch:
                await self._write([taken])
            return
        for taken, landed in zip(batch, stored, strict=True):
            taken.saver.landed(taken, landed)

    def _failed(self, taken: _Taken, error: Exception) -> None:
        if not taken.waiters:
            log.warning(
                "could not store the draft of message %s (tried again in %g s): %s",
                taken.write.message_id,
                RETRY_DELAY,
                getattr(error, "message", None) or repr(error),
            )
        taken.saver.failed(taken, error, retry=not self._closing)


def _take(saver: DraftSaver) -> _Taken | None:
    """The saver's write; None (its waiters told why) if even that failed: one broken draft
    must not stop the writer that every reply depends on."""
    try:
        return saver.take()
    except Exception as exc:
        log.exception("could not prepare the draft write of message %s", saver.message_id)
        saver.abandon(exc)
        return None
