"""The ``EventLog`` contract, run against every backend (``conftest.py``): ``a`` and ``b`` are
two processes sharing the logs (on Redis, two separate clients)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TypeVar

from opencode.coordination.base import BusEntry, Entry, EventLog, Gap

Pair = tuple[EventLog, EventLog]
T = TypeVar("T")


async def take(stream: AsyncIterator[T], count: int, within: float = 1.0) -> list[T]:
    """The first ``count`` items of ``stream`` (closing it), failing if they take too long."""

    async def collect() -> list[T]:
        items: list[T] = []
        async with aclosing(stream):
            async for item in stream:
                items.append(item)
                if len(items) == count:
                    break
        return items

    return await asyncio.wait_for(collect(), within)


async def take_until(stream: AsyncIterator[T], bus_type: str, within: float = 1.5) -> list[T]:
    """Items of ``stream`` up to the first bus event of ``bus_type`` (closing it)."""

    async def collect() -> list[T]:
        items: list[T] = []
        async with aclosing(stream):
            async for item in stream:
                items.append(item)
                if isinstance(item, BusEntry) and item.type == bus_type:
                    break
        return items

    return await asyncio.wait_for(collect(), within)


async def turn(log: EventLog, session_id: str, *events: str) -> list[int]:
    """Append a whole turn; the last event is its final one."""
    ids = [await log.append(session_id, event) for event in events[:-1]]
    return [*ids, await log.append(session_id, events[-1], final=True)]


def datas(entries: list[Entry]) -> list[bytes]:
    return [entry.data for entry in entries]


async def test_ids_only_grow_across_appends_turns_and_processes(event_logs: Pair) -> None:
    a, b = event_logs
    first = await turn(a, "ses_1", "e1", "e2", "done")
    second = await turn(b, "ses_1", "e3", "done")
    third = await turn(a, "ses_1", *(f"e{n}" for n in range(50)), "done")
    ids = first + second + third
    assert ids == sorted(set(ids))
    assert all(0 < i < 2**53 for i in ids)  # a JavaScript number holds them exactly
    assert await b.turn_start("ses_1") == third[0]
    assert await a.turn_start("ses_2") is None


async def test_read_after_an_id_returns_exactly_the_later_events(event_logs: Pair) -> None:
    a, b = event_logs
    ids = await turn(a, "ses_1", *(f"e{n}" for n in range(10)), "done")
    entries = await b.read("ses_1")
    assert [e.id for e in entries] == ids
    assert datas(entries) == [f"e{n}".encode() for n in range(10)] + [b"done"]
    assert [e.final for e in entries] == [False] * 10 + [True]
    later = await b.read("ses_1", ids[4])
    assert [e.id for e in later] == ids[5:]
    assert await b.read("ses_1", ids[-1]) == []
    assert [e.id for e in await b.read("ses_1", ids[1], limit=3)] == ids[2:5]
    assert await a.read("ses_other") == []


async def test_follow_replays_then_goes_live_in_order(event_logs: Pair) -> None:
    a, b = event_logs
    head = [await a.append("ses_1", f"e{n}") for n in range(5)]
    follower = b.follow("ses_1", head[1])  # a reconnect after the second event

    async def appender() -> None:
        for n in range(5, 40):
            await a.append("ses_1", f"e{n}")
            if n % 7 == 0:
                await asyncio.sleep(0.01)  # some arrive while the follower waits
        await a.append("ses_1", b"done", final=True)

    writing = asyncio.ensure_future(appender())
    got = await take(follower, 1000, within=2)
    await writing
    assert all(isinstance(e, Entry) for e in got)
    assert datas(got) == [f"e{n}".encode() for n in range(2, 40)] + [b"done"]  # type: ignore[arg-type]
    ids = [e.id for e in got]  # type: ignore[union-attr]
    assert ids == sorted(set(ids)) and ids[0] > head[1]


async def test_follow_of_a_finished_turn_replays_it_and_ends(event_logs: Pair) -> None:
    a, b = event_logs
    await turn(a, "ses_1", "old", "done")
    ids = await turn(a, "ses_1", "e1", "e2", "done")
    got = await take(b.follow("ses_1"), 1000)  # no id: the current (last) turn, from its start
    assert [e.id for e in got] == ids  # type: ignore[union-attr]
    # From the end of a turn: the next turn, up to its final event.
    after_end = asyncio.ensure_future(take(b.follow("ses_1", ids[-1]), 1000))
    await asyncio.sleep(0.05)
    assert not after_end.done()
    nxt = await turn(a, "ses_1", "n1", "done")
    assert [e.id for e in await after_end] == nxt  # type: ignore[union-attr]


async def test_follow_without_an_id_waits_for_the_turn_to_start(event_logs: Pair) -> None:
    a, b = event_logs
    follower = asyncio.ensure_future(take(b.follow("ses_1"), 1000))
    await asyncio.sleep(0.05)
    ids = await turn(a, "ses_1", "e1", "done")
    assert [e.id for e in await follower] == ids  # type: ignore[union-attr]


async def test_trimming_keeps_at_least_the_previous_turn(event_logs: Pair) -> None:
    a, b = event_logs
    await turn(a, "ses_1", *(f"t1-{n}" for n in range(300)), "done")  # several stream nodes
    two = await turn(a, "ses_1", "t2-a", "t2-b", "done")
    three = await turn(b, "ses_1", "t3-a", "done")
    kept = await b.read("ses_1", limit=10_000)
    assert [e.id for e in kept][-5:] == two + three
    assert len(kept) < 300  # the turn before the previous one went (whole nodes, on Redis)
    # A reader whose id was trimmed away is told so, then gets everything retained.
    got = await take(b.follow("ses_1", 1), 1)
    assert got == [Gap(1, kept[0].id)]


async def test_follow_from_an_id_never_issued_gets_a_gap_then_the_turn(event_logs: Pair) -> None:
    a, b = event_logs
    ids = await turn(a, "ses_1", "e1", "done")
    got = await take(b.follow("ses_1", ids[-1] + 10**9), 3)
    assert got[0] == Gap(ids[-1] + 10**9, ids[0])
    assert [e.id for e in got[1:]] == ids  # type: ignore[union-attr]


async def test_bus_publish_and_subscribe_across_processes(event_logs: Pair) -> None:
    a, b = event_logs
    before = await a.publish("server.connected", {})
    live = b.subscribe()  # only new events
    replay = b.subscribe(before)
    first = asyncio.ensure_future(take(live, 3))
    await asyncio.sleep(0.05)  # subscribed before the events below
    ids = [
        await a.publish("session.status", {"status": "busy"}, owner="usr_1", session_id="ses_1"),
        await b.publish("message.delta", {"text": "hi"}, owner="usr_2", session_id="ses_2"),
        await a.publish("server.heartbeat", {}),
    ]
    assert ids == sorted(ids) and ids[0] > before
    for got in (await first, await take(replay, 3)):
        assert [e.id for e in got] == ids  # type: ignore[union-attr]
        assert got[0] == BusEntry(ids[0], "session.status", {"status": "busy"}, "usr_1", "ses_1")
        assert got[1].type == "message.delta" and got[1].owner == "usr_2"  # type: ignore[union-attr]


async def test_bus_tells_a_reader_older_than_its_retention(event_logs: Pair) -> None:
    a, b = event_logs  # the fixtures cap the bus at about 100 events
    ids = [await a.publish("tick", {"n": n}) for n in range(400)]
    reading = asyncio.ensure_future(take_until(b.subscribe(ids[0]), "late"))
    await asyncio.sleep(0.1)
    late = await a.publish("late", {})
    got = await reading
    gap = got[0]
    assert isinstance(gap, Gap) and gap.after_id == ids[0]
    assert gap.oldest_id is not None and ids[0] < gap.oldest_id <= ids[-100]
    # ...then every retained event after its id, in order, then live ones.
    assert [e.id for e in got[1:]] == [*ids[ids.index(gap.oldest_id) :], late]  # type: ignore[union-attr]


async def test_bus_from_an_id_never_issued_gets_a_gap_then_new_events(event_logs: Pair) -> None:
    a, b = event_logs
    last = await a.publish("tick", {})
    subscription = b.subscribe(last + 10**9)
    first = await take(subscription, 1)
    assert first == [Gap(last + 10**9, last)]
