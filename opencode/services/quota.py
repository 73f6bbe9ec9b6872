"""Daily token quotas: refuse a turn over the limit, reserve before each model call, settle after.

Every model call a user causes (turn steps, titles, compaction summaries) reserves an estimate
of its prompt in the store before it starts and settles its real usage after it ends, each in
one atomic statement, so concurrent turns on any number of processes cannot overspend: a call
starts only while ``used + reserved < limit``, so the day's total exceeds the limit by at most
the calls that were already running. Nothing here runs on the per-chunk path.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from math import ceil
from typing import Any

from opencode.agent.compaction import estimate_tokens
from opencode.core.errors import OpencodeError
from opencode.core.ids import utc_now
from opencode.llm.types import ChatMessage, ModelClient, ModelRequest, StepOutput, StreamChunk
from opencode.schemas.usage import LimitOut, ModelDayOut, UsageOut
from opencode.storage.base import DailyUsage, QuotaDecision, Store

log = logging.getLogger(__name__)


class QuotaExceeded(OpencodeError):
    status_code = 429
    error = "quota_exceeded"

    def __init__(self, *, limit: int, used: int, resets_at: datetime, now: datetime) -> None:
        retry_after = max(1, ceil((resets_at - now).total_seconds()))
        super().__init__(
            f"The daily token quota is spent: {used} of {limit} tokens used today (UTC). It "
            f"resets at {resets_at.isoformat()}; an admin can raise it with PUT /usage/limit.",
            headers={"Retry-After": str(retry_after)},
            limit=limit,
            used=used,
            resets_at=resets_at.isoformat(),
        )


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)


class QuotaService:
    def __init__(
        self, store: Store, *, daily_limit: int, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._store = store
        self.default_limit = daily_limit
        self._clock = clock

    def today(self) -> date:
        return self._clock().date()

    async def check(self, user_id: str) -> int:
        """Before a turn (or a title): 429 when the user has no tokens left today, counting the
        calls running now as ``reserve_tokens`` does, so a turn this lets in gets its first step.
        Returns the user's limit (0: unlimited)."""
        now = self._clock()
        day = await self._store.daily_usage(user_id, now.date())
        limit = await self._limit(user_id)
        if limit and day.total_tokens + day.reserved >= limit:
            raise QuotaExceeded(
                limit=limit, used=day.total_tokens, resets_at=next_midnight(now), now=now
            )
        return limit

    async def usage(self, user_id: str) -> UsageOut:
        now = self._clock()
        day = await self._store.daily_usage(user_id, now.date())
        limit = await self._limit(user_id)
        return _usage_out(user_id, day, limit, next_midnight(now))

    async def limit_of(self, user_id: str) -> LimitOut:
        override = await self._store.get_user_limit(user_id)
        return LimitOut(
            user_id=user_id, daily_token_limit=override, default_limit=self.default_limit
        )

    async def set_limit(self, user_id: str, limit: int | None) -> LimitOut:
        await self._store.set_user_limit(user_id, limit)
        return await self.limit_of(user_id)

    def meter(self, user_id: str, model: str, *, unlimited: bool = False) -> "StepMeter":
        return StepMeter(self, user_id, model, unlimited=unlimited)

    def metered(self, client: ModelClient, user_id: str, model: str) -> ModelClient:
        """``client`` with every call reserved and settled for ``user_id``; a call the quota
        refuses raises ``QuotaExceeded`` before anything is sent."""
        return MeteredClient(client, lambda: self.meter(user_id, model))

    async def _limit(self, user_id: str) -> int:
        override = await self._store.get_user_limit(user_id)
        return self.default_limit if override is None else override

    async def _reserve(self, user_id: str, tokens: int) -> tuple[date, QuotaDecision]:
        """The store's decision, and the day the reservation (if allowed) is held on."""
        now = self._clock()
        decision = await self._store.reserve_tokens(
            user_id, now.date(), tokens, default_limit=self.default_limit
        )
        return now.date(), decision

    def _refusal(self, decision: QuotaDecision) -> QuotaExceeded:
        now = self._clock()
        return QuotaExceeded(
            limit=decision.limit, used=decision.used, resets_at=next_midnight(now), now=now
        )


class StepMeter:
    """The agent loop's ``Meter`` for one run: one reservation per model call at a time."""

    def __init__(
        self, quota: QuotaService, user_id: str, model: str, *, unlimited: bool = False
    ) -> None:
        self._quota = quota
        self.user_id = user_id
        self._model = model
        # A user without a limit (checked at the turn's start) cannot be refused: the
        # reservation is then written while the call starts, not before it (~0.9 ms of the
        # time to first text on SQLite), and settling waits for it.
        self._unlimited = unlimited
        self._reserving: asyncio.Future[tuple[date, QuotaDecision]] | None = None
        self._tokens = 0
        self._held: tuple[date, int] | None = None
        self._refused: QuotaDecision | None = None

    async def admit(self, messages: Sequence[ChatMessage]) -> bool:
        """Reserve the prompt's estimated tokens; False when the user is over the limit."""
        tokens = max(1, estimate_tokens(messages))
        reserving = asyncio.ensure_future(self._quota._reserve(self.user_id, tokens))
        if self._unlimited:
            reserving.add_done_callback(_retrieved)  # settle reports a failure, if it runs
            self._reserving, self._tokens = reserving, tokens
            return True
        day, decision = await reserving
        self._held = (day, tokens) if decision.allowed else None
        self._refused = None if decision.allowed else decision
        return decision.allowed

    async def settle(self, output: StepOutput | None, *, streamed: bool = False) -> None:
        """Record the call's usage and release its reservation. A call cut short (``output``
        None) after it streamed is charged its reserved estimate: the provider billed the
        prompt; one that failed before any output is charged nothing."""
        if self._reserving is not None:
            reserving, self._reserving = self._reserving, None
            try:
                day, decision = await asyncio.shield(reserving)
            except Exception as exc:  # nothing was reserved: nothing to settle
                log.warning("could not reserve a model call of user %s: %s", self.user_id, exc)
                return
            self._held = (day, self._tokens) if decision.allowed else None
        if self._held is None:
            return
        day, reserved = self._held
        self._held = None
        if output is not None:
            tokens_in, tokens_out = output.usage.input_tokens, output.usage.output_tokens
            cost = output.cost
        else:
            tokens_in, tokens_out, cost = (reserved if streamed else 0), 0, 0.0
        settle = self._quota._store.settle_tokens(
            self.user_id,
            day,
            reserved=reserved,
            model=self._model,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost=cost,
        )
        # Bookkeeping never changes how a turn ends (an abort stays an abort, an answer an
        # answer), and a second cancel cannot cut the write short; a settle that fails leaves
        # the reservation to expire after RESERVATION_TTL.
        try:
            await asyncio.shield(settle)
        except Exception as exc:  # the store's own errors say what failed, in one line
            log.warning("could not record a model call of user %s: %s", self.user_id, exc)

    def refusal(self) -> QuotaExceeded:
        """The 429 for the call ``admit`` just refused, with the figures it refused on."""
        assert self._refused is not None
        return self._quota._refusal(self._refused)


class MeteredClient:
    """A ``ModelClient`` whose calls are admitted and settled by a ``StepMeter`` (titles and
    summaries; turn steps are metered by the loop itself, between steps)."""

    def __init__(self, inner: ModelClient, meter: Callable[[], StepMeter]) -> None:
        self.inner = inner
        self._meter = meter  # one per call, so overlapping calls hold their own reservations

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        meter = self._meter()
        if not await meter.admit(request.messages):
            raise meter.refusal()
        output: StepOutput | None = None
        streamed = False
        try:
            async for chunk in self.inner.stream(request):
                if isinstance(chunk, StepOutput):
                    output = chunk
                else:
                    streamed = True
                yield chunk
        finally:
            await meter.settle(output, streamed=streamed)


def _usage_out(user_id: str, day: DailyUsage, limit: int, resets_at: datetime) -> UsageOut:
    return UsageOut(
        user_id=user_id,
        day=day.day,
        used=day.total_tokens,
        limit=limit,
        remaining=max(0, limit - day.total_tokens) if limit else None,
        resets_at=resets_at,
        reserved=day.reserved,
        cost=day.cost,
        requests=day.requests,
        by_model=[
            ModelDayOut(
                model=m.model,
                input_tokens=m.input_tokens,
                output_tokens=m.output_tokens,
                total_tokens=m.total_tokens,
                cost=m.cost,
                requests=m.requests,
            )
            for m in day.by_model
        ],
    )


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
