"""QuotaService over a real SQLite store with a clock the tests move: the refusal's Retry-After,
a call that straddles UTC midnight, and what a metered call is charged however it ends."""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from opencode.llm.complete import complete
from opencode.llm.types import (
    ChatMessage,
    ModelRequest,
    ProviderError,
    StepOutput,
    TextDelta,
    Usage,
)
from opencode.services.quota import QuotaExceeded, QuotaService
from opencode.storage.sqlite import SqliteStore

USER = "11111111-1111-4111-8111-111111111111"
MODEL = "openai/gpt-4o-mini"
DAY = date(2026, 12, 4)
PROMPT = (ChatMessage("user", "x" * 400),)  # a 100-token estimate
REQUEST = ModelRequest(model=MODEL, messages=PROMPT)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScriptedClient:
    """A ``ModelClient`` that streams ``text`` then ends with ``output``, or raises ``error``
    after the text; ``calls`` counts the streams started."""

    def __init__(
        self,
        *,
        text: tuple[str, ...] = (),
        output: StepOutput | None = None,
        error: ProviderError | None = None,
    ) -> None:
        self.text, self.output, self.error = text, output, error
        self.calls = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[TextDelta | StepOutput]:
        self.calls += 1
        for piece in self.text:
            yield TextDelta(piece)
        if self.error is not None:
            raise self.error
        if self.output is not None:
            yield self.output


def output_of(tokens_in: int, tokens_out: int, cost: float = 0.001) -> StepOutput:
    return StepOutput("ok", (), (), "stop", Usage(tokens_in, tokens_out), cost)


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "quota.db"))
    await store.initialize()
    yield store
    await store.close()


def quota_at(store: SqliteStore, now: datetime, *, limit: int = 1000) -> QuotaService:
    return QuotaService(store, daily_limit=limit, clock=Clock(now))


async def spend(store: SqliteStore, tokens: int, day: date = DAY) -> None:
    await store.settle_tokens(
        USER, day, reserved=0, model=MODEL, input_tokens=tokens, output_tokens=0, cost=0.0
    )


async def test_at_the_limit_the_refusal_says_when_the_day_resets(store):
    now = datetime(2026, 12, 4, 23, 59, 58, 500_000, tzinfo=UTC)
    quota = quota_at(store, now, limit=100)
    await spend(store, 99)
    await quota.check(USER)  # one token left: allowed

    await spend(store, 1)
    with pytest.raises(QuotaExceeded) as refused:
        await quota.check(USER)
    error = refused.value
    assert error.status_code == 429 and error.error == "quota_exceeded"
    assert error.headers == {"Retry-After": "2"}  # 1.5 s to midnight, rounded up
    assert error.extra == {"limit": 100, "used": 100, "resets_at": "2026-12-05T00:00:00+00:00"}

    await store.set_user_limit(USER, 0)  # unlimited for this user
    await quota.check(USER)
    usage = await quota.usage(USER)
    assert (usage.limit, usage.remaining, usage.used) == (0, None, 100)


async def test_a_call_that_straddles_midnight_is_charged_to_the_day_it_started(store):
    clock = Clock(datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC))
    quota = QuotaService(store, daily_limit=1000, clock=clock)
    meter = quota.meter(USER, MODEL)
    assert await meter.admit(PROMPT)
    assert (await store.daily_usage(USER, DAY)).reserved == 100

    clock.now += timedelta(seconds=2)  # the call ends on the next day
    await meter.settle(output_of(300, 20))
    before, after = await store.daily_usage(USER, DAY), await store.daily_usage(USER, quota.today())
    assert (before.total_tokens, before.reserved, before.requests) == (320, 0, 1)
    assert (after.total_tokens, after.reserved, after.requests) == (0, 0, 0)
    assert (await quota.usage(USER)).remaining == 1000


@pytest.mark.parametrize("ending", ["settled", "cut short after streaming"])
async def test_an_unlimited_users_reservation_goes_with_the_call_and_is_still_charged(
    store, ending
):
    """No limit: the reservation is written while the call starts (admit does not wait for
    the store), and settling waits for it, so the day's figures are the same as with a limit."""
    quota = quota_at(store, datetime(2026, 12, 4, 12, tzinfo=UTC), limit=0)
    assert await quota.check(USER) == 0
    meter = quota.meter(USER, MODEL, unlimited=True)
    assert await meter.admit(PROMPT)  # returns before the reservation is stored
    if ending == "settled":
        await meter.settle(output_of(300, 20))
        expected = (320, 0, 1)
    else:
        await meter.settle(None, streamed=True)  # charged the reserved estimate
        expected = (100, 0, 1)
    day = await store.daily_usage(USER, DAY)
    assert (day.total_tokens, day.reserved, day.requests) == expected


async def test_a_metered_call_is_refused_before_it_is_sent(store):
    quota = quota_at(store, datetime(2026, 12, 4, 12, tzinfo=UTC), limit=100)
    await spend(store, 100)
    inner = ScriptedClient(output=output_of(1, 1))
    with pytest.raises(QuotaExceeded):
        await complete(quota.metered(inner, USER, MODEL), REQUEST)
    assert inner.calls == 0
    usage = await store.daily_usage(USER, DAY)
    assert (usage.total_tokens, usage.reserved, usage.requests) == (100, 0, 1)  # spend()'s


@pytest.mark.parametrize(
    ("text", "charged"),
    [((), 0), (("partial ",), 100)],  # nothing arrived: not billed; some did: the estimate
)
async def test_a_metered_call_that_fails_releases_its_reservation(store, text, charged):
    quota = quota_at(store, datetime(2026, 12, 4, 12, tzinfo=UTC))
    inner = ScriptedClient(text=text, error=ProviderError("down", status_code=500))
    with pytest.raises(ProviderError):
        await complete(quota.metered(inner, USER, MODEL), REQUEST)
    usage = await store.daily_usage(USER, DAY)
    assert (usage.total_tokens, usage.input_tokens, usage.reserved) == (charged, charged, 0)
    assert usage.requests == 1


async def test_a_metered_call_settles_its_real_usage(store):
    quota = quota_at(store, datetime(2026, 12, 4, 12, tzinfo=UTC))
    inner = ScriptedClient(text=("o", "k"), output=output_of(250, 30, cost=0.02))
    output = await complete(quota.metered(inner, USER, MODEL), REQUEST)
    assert output is not None and output.usage.input_tokens == 250
    usage = await quota.usage(USER)
    assert (usage.used, usage.reserved, usage.requests, usage.remaining) == (280, 0, 1, 720)
    (model,) = usage.by_model
    assert (model.model, model.input_tokens, model.output_tokens) == (MODEL, 250, 30)
    assert model.cost == pytest.approx(0.02) and usage.cost == pytest.approx(0.02)
