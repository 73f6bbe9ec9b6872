"""The ``Coordinator`` contract, run against every backend (``conftest.py``): ``a`` and ``b``
are two processes; leases live ``TTL_MS`` (300 ms) so expiry is tested in real time."""

import asyncio
from dataclasses import replace

from opencode.coordination.base import Coordinator
from opencode.coordination.holding import Holding
from tests.coordination.conftest import TTL_MS

Pair = tuple[Coordinator, Coordinator]
LAPSE = TTL_MS / 1000 + 0.15  # long enough for a lease nobody renews to be gone


async def test_claim_is_exclusive_under_concurrency(coordinators: Pair) -> None:
    a, b = coordinators
    claims = [(a if n % 2 else b).claim("ses_1", f"run_{n}") for n in range(20)]
    leases = [lease for lease in await asyncio.gather(*claims) if lease is not None]
    assert len(leases) == 1
    assert await a.is_live("ses_1", leases[0].run_id)
    assert await b.claim("ses_2", "run_x") is not None  # another session is free


async def test_release_only_by_the_holder(coordinators: Pair) -> None:
    a, b = coordinators
    lease = await a.claim("ses_1", "run_1")
    assert lease is not None
    forged = replace(lease, token=lease.token + "x")
    assert not await b.release(forged)
    assert await b.claim("ses_1", "run_2") is None  # still held
    assert await a.release(lease)
    assert not await a.release(lease)  # once
    assert not await b.is_live("ses_1", "run_1")
    assert await b.claim("ses_1", "run_2") is not None


async def test_an_expired_lease_can_be_claimed_again(coordinators: Pair) -> None:
    a, b = coordinators
    assert await a.claim("ses_1", "run_1") is not None
    await asyncio.sleep(LAPSE)
    assert not await b.is_live("ses_1", "run_1")
    lease = await b.claim("ses_1", "run_2")
    assert lease is not None and lease.instance_id == b.instance_id


async def test_the_heartbeat_keeps_a_lease_past_its_ttl(coordinators: Pair) -> None:
    a, b = coordinators
    lease = await a.claim("ses_1", "run_1")
    assert lease is not None
    async with Holding(a, lease, renew_every=0.08) as holding:
        await asyncio.sleep(3 * TTL_MS / 1000)
        assert await b.is_live("ses_1", "run_1")
        assert await b.claim("ses_1", "run_2") is None
        assert not holding.lost.is_set()
    assert not await b.is_live("ses_1", "run_1")  # leaving the block released it
    assert await b.claim("ses_1", "run_2") is not None


async def test_a_stale_holder_cannot_touch_the_newer_lease(coordinators: Pair) -> None:
    a, b = coordinators
    old = await a.claim("ses_1", "run_1")
    assert old is not None
    await asyncio.sleep(LAPSE)
    new = await b.claim("ses_1", "run_2")
    assert new is not None
    assert await a.renew(old) is None
    assert not await a.release(old)
    assert not await a.request_abort("ses_1", "run_1")
    assert await b.is_live("ses_1", "run_2")
    assert await b.renew(new) is not None


async def test_a_lapsed_lease_nobody_claimed_is_reasserted(coordinators: Pair) -> None:
    a, _ = coordinators
    lease = await a.claim("ses_1", "run_1")
    assert lease is not None
    await asyncio.sleep(LAPSE)
    assert await a.renew(lease) is not None  # as after a Redis restart (§1 heartbeat)
    assert await a.is_live("ses_1", "run_1")


async def test_the_holder_learns_it_lost_the_lease(coordinators: Pair) -> None:
    a, b = coordinators
    lease = await a.claim("ses_1", "run_1")
    assert lease is not None
    lost: list[bool] = []
    # Beats further apart than the TTL: b claims in between, a's next beat finds out.
    async with Holding(a, lease, renew_every=0.5, on_lost=lambda: lost.append(True)) as holding:
        await asyncio.sleep(LAPSE)
        assert await b.claim("ses_1", "run_2") is not None
        await asyncio.wait_for(holding.lost.wait(), 1)
    assert lost == [True]
    assert await b.is_live("ses_1", "run_2")  # a's exit did not release b's lease


async def test_abort_reaches_the_owner_and_an_old_run_id_is_a_no_op(coordinators: Pair) -> None:
    a, b = coordinators
    lease = await a.claim("ses_1", "run_2")
    assert lease is not None
    aborts: list[bool] = []
    # Heartbeats far apart: only the wake-up can deliver it this fast.
    async with Holding(a, lease, renew_every=5, on_abort=lambda: aborts.append(True)) as holding:
        await asyncio.sleep(0.05)
        assert not await b.request_abort("ses_1", "run_1")  # an older turn of the session
        assert not await b.request_abort("ses_2", "run_2")
        await asyncio.sleep(0.1)
        assert not holding.aborted.is_set()
        assert await b.request_abort("ses_1", "run_2")
        await asyncio.wait_for(holding.aborted.wait(), 0.5)
        assert await b.request_abort("ses_1", "run_2")  # again: still live, still reported
    assert aborts == [True]


async def test_a_pending_abort_is_reported_by_renew(coordinators: Pair) -> None:
    """The fallback when a wake-up is lost: the durable record, re-checked every beat."""
    a, b = coordinators
    lease = await a.claim("ses_1", "run_1")
    assert lease is not None
    beat = await a.renew(lease)
    assert beat is not None and not beat.abort_requested
    assert await b.request_abort("ses_1", "run_1")
    beat = await a.renew(lease)
    assert beat is not None and beat.abort_requested


async def test_answers_reach_the_owner_once(coordinators: Pair) -> None:
    a, b = coordinators
    lease = await a.claim("ses_1", "run_1")
    assert lease is not None
    async with Holding(a, lease, renew_every=5) as holding:
        waiting = asyncio.ensure_future(holding.answer("que_1"))
        await asyncio.sleep(0.05)
        assert await b.deliver_answer("ses_1", "run_1", "que_1", [["yes"], ["a", "b"]])
        assert await asyncio.wait_for(waiting, 0.5) == [["yes"], ["a", "b"]]
        assert not await b.deliver_answer("ses_1", "run_1", "que_1", [["no"]])  # one winner
        assert not await b.deliver_answer("ses_1", "run_0", "que_2", [["no"]])  # not live
        # An answer that arrives before anyone waits is kept for the waiter.
        assert await b.deliver_answer("ses_1", "run_1", "que_3", [["later"]])
        await asyncio.sleep(0.1)
        assert await asyncio.wait_for(holding.answer("que_3"), 0.5) == [["later"]]
        beat = await a.renew(lease)
        assert beat is not None and beat.answers == {
            "que_1": [["yes"], ["a", "b"]],
            "que_3": [["later"]],
        }


async def test_live_runs_lists_the_claimed_sessions(coordinators: Pair) -> None:
    a, b = coordinators
    one = await a.claim("ses_1", "run_1")
    two = await b.claim("ses_2", "run_2")
    assert one is not None and two is not None
    live = {(r.session_id, r.run_id, r.instance_id) for r in await a.live_runs()}
    assert live == {("ses_1", "run_1", a.instance_id), ("ses_2", "run_2", b.instance_id)}
    assert await b.release(two)
    assert [r.session_id for r in await a.live_runs()] == ["ses_1"]
    await asyncio.sleep(LAPSE)
    assert await b.live_runs() == []  # lapsed: what recovery may mark interrupted
